import pytest

from groklab.config import ConfigError, load_config, preset_names, to_dict


def test_nanda_preset_is_the_paper():
    c = load_config("nanda")
    assert (c.task.op, c.task.p, c.task.train_frac) == ("add", 113, 0.3)
    m = c.model
    assert (m.arch, m.n_layers, m.d_model, m.n_heads, m.d_head, m.d_mlp, m.act, m.layernorm) == (
        "transformer",
        1,
        128,
        4,
        32,
        512,
        "relu",
        False,
    )
    o = c.optim
    assert (o.name, o.lr, o.weight_decay, o.betas, o.warmup_steps) == ("adamw", 1e-3, 1.0, [0.9, 0.98], 10)
    assert c.train.batch_size is None and c.train.loss_dtype == "float64"


def test_presets_hold_only_differences_and_all_load():
    assert {"nanda", "debug"} <= set(preset_names())
    for name in preset_names():
        assert load_config(name).name == name


def test_overrides_are_typed_and_dotted():
    c = load_config("debug", ["optim.lr=3e-3", "train.batch_size=64", "model.hidden=[64, 32]", "seed=4"])
    assert c.optim.lr == 0.003 and c.train.batch_size == 64 and c.model.hidden == [64, 32] and c.seed == 4
    assert to_dict(load_config("debug", ["train.batch_size=null"]))["train"]["batch_size"] is None


def test_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ntask: {p: 11}\n")
    c = load_config(str(path))
    assert c.name == "mine" and c.task.p == 11 and c.model.d_model == 128


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["model.widht=3"], "widht"),
        (["optim.lr=abc"], "optim.lr"),
        (["task.op=pow"], "unknown operation"),
        (["model.arch=lstm"], "unknown architecture"),
        (["task.p=1"], "task.p"),
        (["task.op=div", "task.p=12"], "prime"),
        (["task.train_frac=0"], "train_frac"),
        (["task.train_frac=1"], "train_frac"),
        (["task.train_frac=0.001", "task.p=5"], "training pairs"),
        (["optim.lr=-1"], "optim.lr"),
        (["train.steps=0"], "train.steps"),
        (["train.eval_every=0"], "train.eval_every"),
        (["model.d_model=0"], "model.d_model"),
        (["model.d_mlp=-4"], "model.d_mlp"),
        (["optim"], "key=value"),
    ],
)
def test_bad_config_is_one_line_error(overrides, fragment):
    with pytest.raises(ConfigError) as e:
        load_config("debug", overrides)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("nandaa")
