"""The notebook API of DESIGN section 8: the snippet as written, the one reader, a hand-built model."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import groklab as gl
from groklab.config import load_config
from groklab.models import build_model
from groklab.train import Callback


def test_design_snippet_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("transformer_lens")
    monkeypatch.chdir(tmp_path)
    run = gl.train("quick", set={"seed": 1}, out="runs/q1")  # preset name, YAML path or a config object
    run = gl.load_run("runs/q1")
    assert run.config.seed == 1 and run.config.name == "quick"
    assert isinstance(run.metrics, pd.DataFrame) and list(run.metrics["step"]) == [
        r["step"] for r in run.metric_records()
    ]
    assert run.steps == sorted(run.steps) and run.steps[0] == 0
    model = run.model()  # final weights
    missing = next(s for s in range(run.steps[-1]) if s not in run.steps)
    with pytest.raises(gl.RunError, match=rf"no weights saved at step {missing}; nearest saved steps: \[\d+, \d+\]"):
        run.model(step=missing)
    ds = run.dataset
    train, test = run.split
    assert len(train) + len(test) == ds.n and not set(train) & set(test)
    result = gl.analyze(run)  # typed result; also written to RUN_DIR/analysis/
    assert run.analysis.events.grokking_step == result.events.grokking_step is not None
    assert run.analysis.key_frequencies == result.key_frequencies and result.key_frequencies
    fig = run.figure("fourier_embedding_spectrum")
    assert fig.axes
    hooked = run.to_hooked_transformer()
    with torch.no_grad():
        diff = (hooked(ds.tokens)[:, -1, : ds.p] - model.forward_last(ds.tokens)).abs().max()
    assert float(diff) < 1e-4


def test_model_at_a_step_is_the_saved_weights(tmp_path):
    run = gl.train("debug", set=["train.steps=200", "train.checkpoint_every=100"], out=tmp_path / "r")
    assert run.steps == [0, 1, 2, 5, 10, 20, 50, 100, 200]
    for step in (0, 50, 200):
        saved = run.load_state(step)
        got = run.model(step).state_dict()
        assert all(torch.equal(got[k], saved[k]) for k in saved)
    untrained = build_model(run.config.model, run.config.task.p, seed=run.config.seed)
    assert all(torch.equal(v, untrained.state_dict()[k]) for k, v in run.model(0).state_dict().items())


def test_a_hand_built_model_trains_in_the_same_loop(tmp_path):
    """The trainer takes a model the user built; its config is what the run directory records."""
    cfg = load_config("debug", ["train.steps=60", "train.eval_every=20"])
    custom = cfg.model.__class__(**{**vars(cfg.model), "d_mlp": 48})
    model = build_model(custom, cfg.task.p, seed=7)
    with torch.no_grad():
        model.embed.W_E.mul_(0.5)  # an initialisation of the user's own

    seen: list[tuple[int, float]] = []

    class Stop(Callback):
        def on_step(self, trainer, loss):
            assert math.isfinite(loss)

        def on_eval(self, trainer, result):
            seen.append((result.step, result.test_loss))
            return result.step >= 40  # stop after the evaluation at step 40

    start = {k: v.clone() for k, v in model.state_dict().items()}
    run = gl.train(cfg, model=model, callbacks=[Stop()], out=tmp_path / "hand")
    assert [s for s, _ in seen] == [0, 20, 40] and run.status()["state"] == "completed"
    assert run.config.model.d_mlp == 48
    assert all(torch.equal(run.load_state(0)[k], start[k]) for k in start)  # step 0 is the model as given
    assert all(torch.equal(run.model().state_dict()[k], model.state_dict()[k]) for k in start)
    with pytest.raises(TypeError, match="groklab Transformer or MLPModel"):
        gl.train(cfg, model=torch.nn.Linear(3, 3), out=tmp_path / "bad")


def test_train_seeds_gives_one_run_per_seed(tmp_path):
    """gl.train_seeds trains an ensemble: member S is the run DIR/seed_S with seed = split_seed = S,
    and it equals its separate gl.train run (same first evaluations)."""
    runs = gl.train_seeds("debug", seeds=[2, 4], set={"train.steps": 40}, out=tmp_path / "e")
    assert [r.path for r in runs] == [tmp_path / "e" / "seed_2", tmp_path / "e" / "seed_4"]
    assert [(r.config.seed, r.config.task.split_seed) for r in runs] == [(2, 2), (4, 4)]
    alone = gl.train("debug", set={"train.steps": 40, "seed": 4, "task.split_seed": 4}, out=tmp_path / "alone")
    a, b = runs[1].metrics, alone.metrics
    assert list(a["step"]) == list(b["step"])
    assert ((a["train_loss"] - b["train_loss"]).abs() <= 1e-5 * b["train_loss"].abs()).all()
    with pytest.raises(gl.RunError, match="distinct"):
        gl.train_seeds("debug", seeds=[1, 1], out=tmp_path / "bad")
