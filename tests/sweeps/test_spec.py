"""Spec validation and expansion: products, equal lengths, stable ids, spec errors vs invalid points."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from groklab.config import load_config, to_dict
from groklab.sweeps import SweepError, expand, load_spec, parse_spec, spec_names
from groklab.sweeps.spec import config_hash

TINY = Path(__file__).with_name("tiny.yaml")


def spec(**kw):
    return parse_spec({"base": "debug", **kw})


def test_grid_times_zip_product_in_order():
    s = spec(
        set={"train.steps": 10},
        grid={"optim.weight_decay": [0.5, 1.0, 2.0], "seed": [0, 1]},
        zip={"optim.lr": [1e-3, 2e-3], "model.d_mlp": [32, 64]},
    )
    points = expand(s)
    assert len(points) == 3 * 2 * 2
    expected = [
        {"optim.weight_decay": wd, "seed": seed, "optim.lr": lr, "model.d_mlp": d}
        for wd, seed in itertools.product([0.5, 1.0, 2.0], [0, 1])
        for lr, d in [(1e-3, 32), (2e-3, 64)]
    ]
    assert [p.values for p in points] == expected
    # every point's resolved config is exactly base + set + its values, as load_config would build it
    for p in points:
        overrides = ["train.steps=10", *(f"{k}={v}" for k, v in p.values.items())]
        assert p.config == to_dict(load_config("debug", overrides))
    assert len({p.run_id for p in points}) == len(points)


def test_zip_only_and_no_varied_keys():
    assert [p.values for p in expand(spec(zip={"optim.lr": [1e-3, 2e-3], "seed": [3, 4]}))] == [
        {"optim.lr": 1e-3, "seed": 3},
        {"optim.lr": 2e-3, "seed": 4},
    ]
    (only,) = expand(spec(set={"seed": 5}))
    assert only.values == {} and only.config["seed"] == 5


def test_zip_lists_must_have_equal_lengths():
    with pytest.raises(SweepError, match=r"equal lengths \(optim.lr: 2, seed: 3\)"):
        spec(zip={"optim.lr": [1e-3, 2e-3], "seed": [0, 1, 2]})


def test_run_ids_are_stable_and_depend_on_the_resolved_config():
    a = expand(spec(grid={"optim.weight_decay": [0.5, 1.0], "seed": [0, 1]}))
    b = expand(spec(grid={"optim.weight_decay": [0.5, 1.0], "seed": [0, 1]}))
    assert [p.run_id for p in a] == [p.run_id for p in b]
    assert a[0].run_id == f"weight_decay=0.5_seed=0__{config_hash(a[0].config)}"
    # growing the grid keeps the ids of the points that were already there
    c = {p.run_id for p in expand(spec(grid={"optim.weight_decay": [0.1, 0.5, 1.0, 3.0], "seed": [0, 1, 2]}))}
    assert {p.run_id for p in a} <= c
    # the same values over a different fixed part are different runs
    d = expand(spec(set={"train.steps": 7}, grid={"optim.weight_decay": [0.5, 1.0], "seed": [0, 1]}))
    assert not {p.run_id for p in a} & {p.run_id for p in d}
    assert [p.run_id.split("__")[0] for p in a] == [p.run_id.split("__")[0] for p in d]


def test_clashing_short_names_use_the_full_key():
    (p,) = expand(spec(grid={"name": ["x"], "optim.name": ["sgd"], "seed": [2]}))
    assert p.run_id.startswith("name=x_optim.name=sgd_seed=2__")


def test_range_failures_are_invalid_points_not_spec_errors():
    points = expand(spec(grid={"task.train_frac": [0.5, 1.5], "seed": [0]}))
    assert [p.valid for p in points] == [True, False]
    assert points[1].error == "task.train_frac: must be in (0, 1), got 1.5"
    ops = expand(spec(grid={"task.op": ["div"], "task.p": [16, 17]}))
    assert [p.valid for p in ops] == [False, True] and "prime" in (ops[0].error or "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"grid": {"optim.nope": [1]}}, "Key 'nope' not in 'OptimConfig'"),
        ({"set": {"nope": 1}}, "set nope=1"),
        ({"grid": {"optim.lr": [1e-3, "fast"]}}, "grid optim.lr='fast'"),
        ({"zip": {"seed": [0, 1.5]}}, "zip seed=1.5"),
        ({"grid": {}}, "grid is empty"),
        ({"zip": {}}, "zip is empty"),
        ({"grid": {"seed": []}}, "grid.seed: empty list"),
        ({"grid": {"seed": 3}}, "grid.seed: expected a list"),
        ({"grids": {"seed": [1]}}, "unknown key 'grids'"),
        ({"set": {"seed": 1}, "grid": {"seed": [1, 2]}}, "appears in both set and grid"),
        ({"zip": {"seed": [1, 1]}}, "resolve to the same config"),
        ({"base": "nonexistent"}, "unknown preset"),
        ({"base": None}, "'base' is required"),
    ],
)
def test_spec_errors_are_one_line(data, message):
    with pytest.raises(SweepError) as err:
        expand(parse_spec({"base": "debug", **data}))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_base_path_relative_to_the_spec(tmp_path):
    (tmp_path / "mine.yaml").write_text("name: mine\ntask: {p: 13}\n")
    (tmp_path / "s.yaml").write_text("base: mine.yaml\ngrid: {seed: [0, 1]}\n")
    points = expand(load_spec(str(tmp_path / "s.yaml")))
    assert [p.config["task"]["p"] for p in points] == [13, 13]
    assert load_spec(str(tmp_path / "s.yaml")).name == "s"


def test_packaged_specs_load_and_every_point_is_valid():
    names = spec_names()
    for axis in ("weight_decay", "train_frac", "lr", "operation", "depth", "prime", "heads", "effective_wd", "seeds"):
        assert axis in names
    for name in names:
        points = expand(load_spec(name))
        assert points and all(p.valid for p in points), name
        assert load_spec(name).name == name


def test_tiny_spec_has_two_invalid_points():
    points = expand(load_spec(str(TINY)))
    assert len(points) == 8
    assert [p.values["task.train_frac"] for p in points if not p.valid] == [1.5, 1.5]
