import sys
import warnings

import pytest
import torch

tl = pytest.importorskip("transformer_lens")

from groklab.config import ModelConfig  # noqa: E402
from groklab.data import make_dataset  # noqa: E402
from groklab.interop import INSTALL_HINT, InteropError, from_hooked_transformer, to_hooked_transformer  # noqa: E402
from groklab.models import build_model  # noqa: E402

P = 23
TOKENS = make_dataset("add", P).tokens  # every pair [a, b, =]
SMALL = dict(d_model=32, n_heads=4, d_head=8, d_mlp=48)
ONE_LAYER = ModelConfig(n_layers=1, **SMALL)  # the canonical shape: no LayerNorm, relu
TWO_LAYER_LN = ModelConfig(n_layers=2, layernorm=True, act="gelu", **SMALL)


def _groklab(cfg: ModelConfig):
    """A random-init model whose zero-init parameters (MLP biases, LayerNorm w and b) are random too."""
    model = build_model(cfg, P, seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.rsplit(".", 1)[-1] in ("b_in", "b_out", "w", "b"):
                prm.add_(torch.randn(prm.shape, generator=g))
    return model


def _hooked(**overrides):
    """A HookedTransformer in the grokking demo's layout (d_vocab_out p+1), random MLP biases."""
    kw = dict(n_layers=1, act_fn="relu", normalization_type=None, d_vocab=P + 1, d_vocab_out=P + 1, n_ctx=3)
    cfg = tl.HookedTransformerConfig(**{**kw, **SMALL, **overrides})
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.manual_seed(3)
        hooked = tl.HookedTransformer(cfg)
        for block in [] if cfg.attn_only else hooked.blocks:
            block.mlp.b_in.data.normal_()
            block.mlp.b_out.data.normal_()
    return hooked


@pytest.mark.parametrize("cfg", [ONE_LAYER, TWO_LAYER_LN], ids=["1layer", "2layer-ln-gelu"])
def test_to_hooked_transformer_gives_equal_logits_and_activations(cfg):
    model = _groklab(cfg)
    hooked = to_hooked_transformer(model)
    assert hooked.cfg.d_vocab == P + 1 and hooked.cfg.d_vocab_out == P
    logits, cache = hooked.run_with_cache(TOKENS)
    assert (logits[:, -1] - model.forward_last(TOKENS)).abs().max() <= 1e-5
    _, ours = model.run_with_cache(TOKENS)
    last = cfg.n_layers - 1
    for name in ("blocks.0.attn.hook_pattern", f"blocks.{last}.mlp.hook_post", f"blocks.{last}.hook_resid_post"):
        assert (cache[name] - ours[name]).abs().max() <= 1e-5, name


@pytest.mark.parametrize("cfg", [ONE_LAYER, TWO_LAYER_LN], ids=["1layer", "2layer-ln-gelu"])
def test_round_trip_keeps_config_and_every_weight(cfg):
    model = _groklab(cfg)
    back = from_hooked_transformer(to_hooked_transformer(model))
    assert back.cfg == model.cfg and back.p == P
    ours, theirs = model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_conversions_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    from_hooked_transformer(to_hooked_transformer(_groklab(ONE_LAYER)))
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize(
    "overrides",
    [{}, {"n_layers": 2, "normalization_type": "LN", "act_fn": "gelu"}, {"normalization_type": "LNPre", "n_ctx": 5}],
    ids=["demo", "2layer-ln-gelu", "lnpre-nctx5"],
)
def test_from_hooked_transformer_in_the_demo_layout_gives_equal_logits(overrides):
    hooked = _hooked(**overrides)
    if hooked.cfg.normalization_type == "LN":
        for name, prm in hooked.named_parameters():
            if ".ln" in f".{name}":
                prm.data.normal_()
    model = from_hooked_transformer(hooked)
    assert model.p == P and model.cfg.layernorm == (hooked.cfg.normalization_type is not None)
    want = hooked(TOKENS)[:, -1, :P]  # the `=` class (column p) is dropped
    assert (model.forward_last(TOKENS) - want).abs().max() <= 1e-5
    assert (model.eq_logits(TOKENS) - want).abs().max() <= 1e-5


def test_mlp_model_and_attention_rate_are_refused(monkeypatch):
    mlp = build_model(ModelConfig(arch="mlp", d_embed=8, hidden=[16]), P, seed=0)
    with pytest.raises(InteropError, match="arch 'mlp'"):
        to_hooked_transformer(mlp)
    model = _groklab(ONE_LAYER)
    monkeypatch.setattr(model.cfg, "attn_rate", 0.5, raising=False)
    with pytest.raises(InteropError, match="attn_rate=0.5"):
        to_hooked_transformer(model)


@pytest.mark.parametrize(
    ("overrides", "p", "named"),
    [
        ({}, P + 1, "d_vocab=24"),
        ({"d_vocab_out": P - 1}, None, "d_vocab_out=22"),
        ({"n_ctx": 2}, None, "n_ctx=2"),
        ({"attn_only": True}, None, "attn_only=True"),
        ({"act_fn": "gelu_new"}, None, "act_fn='gelu_new'"),
        ({"normalization_type": "RMS"}, None, "normalization_type='RMS'"),
        ({"normalization_type": "LN", "eps": 1e-6}, None, "eps=1e-06"),
        ({"positional_embedding_type": "rotary"}, None, "positional_embedding_type='rotary'"),
        ({"attention_dir": "bidirectional"}, None, "attention_dir='bidirectional'"),
        ({"attn_scale": 2.0}, None, "attn_scale=2.0"),
        ({"parallel_attn_mlp": True}, None, "parallel_attn_mlp=True"),
    ],
)
def test_hooked_configs_groklab_cannot_express_are_refused(overrides, p, named):
    with pytest.raises(InteropError, match=named):
        from_hooked_transformer(_hooked(**overrides), p=p)


@pytest.mark.parametrize("bias", ["blocks.0.attn.b_Q", "blocks.0.attn.b_V", "blocks.0.attn.b_O", "unembed.b_U"])
def test_nonzero_biases_groklab_lacks_are_refused_except_the_dropped_class(bias):
    hooked = _hooked()
    hooked.unembed.b_U.data[P] = 1.0  # the `=` class: dropped, allowed
    from_hooked_transformer(hooked)
    dict(hooked.named_parameters())[bias].data[0] = 0.5
    with pytest.raises(InteropError, match=f"{bias} is non-zero"):
        from_hooked_transformer(hooked)


def test_missing_transformer_lens_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)
    with pytest.raises(ImportError, match=r"pip install 'groklab\[tl\]'"):
        to_hooked_transformer(_groklab(ONE_LAYER))
    assert "groklab[tl]" in INSTALL_HINT
