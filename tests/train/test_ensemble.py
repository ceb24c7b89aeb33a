"""Ensembles (train/ensemble.py): each member equals its separate run, stops on its own, and a
killed ensemble resumes bit for bit."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from groklab.config import load_config
from groklab.runs import Run, ensemble_members, load_checkpoint
from groklab.train import start_training
from groklab.train.ensemble import member_configs, start_ensemble
from groklab.train.optim import build_optimizer
from groklab.train.stacked import StackedOptimizer

# the debug task set to memorize, then grok (p = 17, seconds a run): seed 3 groks by step 150 and
# stops at 220 with stop_after_grok=100, seeds 0 and 4 do not reach 0.99 test accuracy by 1500
GROKKING_DEBUG = ["task.train_frac=0.8", "optim.lr=1e-2", "optim.weight_decay=2.0", "train.steps=1500"]
MIXED = [3, 0, 4]


def _metrics(run_dir):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in Run(run_dir).metric_records()]


def _final(run_dir):
    step, path = Run(run_dir).checkpoints()[-1]
    return step, load_checkpoint(path)["model"]


def _ensemble_and_separate(tmp_path, config, overrides, seeds):
    cfgs = member_configs(load_config(config, overrides), seeds)
    results = start_ensemble(cfgs, [tmp_path / "ens" / f"seed_{s}" for s in seeds])
    for cfg in cfgs:
        start_training(cfg, tmp_path / "sep" / f"seed_{cfg.seed}")
    return results


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


@pytest.mark.parametrize(
    "config,overrides",
    [
        ("debug", ["train.steps=100", "train.eval_every=10"]),  # the folded path
        ("debug", ["train.steps=100", "train.eval_every=10", "model.arch=mlp", "optim.lr=1e-3"]),  # vmap
        ("debug", ["train.steps=100", "train.eval_every=10", "model.n_layers=2", "optim.lr=1e-3"]),  # vmap
    ],
    ids=["folded", "mlp", "two-layer"],
)
def test_members_equal_their_separate_runs(tmp_path, config, overrides):
    seeds = [0, 1, 2]
    results = _ensemble_and_separate(tmp_path, config, overrides, seeds)
    assert [r.state for _, r in results] == ["completed"] * 3
    for s in seeds:
        ens, sep = _metrics(tmp_path / "ens" / f"seed_{s}"), _metrics(tmp_path / "sep" / f"seed_{s}")
        assert [r["step"] for r in ens] == [r["step"] for r in sep] == list(range(0, 101, 10))
        for a, b in zip(ens, sep, strict=True):
            for key in ("train_loss", "test_loss", "weight_norm"):
                assert _rel(a[key], b[key]) <= 1e-5, (s, a["step"], key, a[key], b[key])
            assert a["lr"] == b["lr"]
        if "model.arch=mlp" not in overrides and "model.n_layers=2" not in overrides:
            assert ens == sep  # the folded path on CPU: bit for bit (vmap's batched kernels: rounding)
        # the member's directory is an ordinary run: same files, same checkpoint steps
        assert (
            Run(tmp_path / "ens" / f"seed_{s}").checkpoint_steps()
            == Run(tmp_path / "sep" / f"seed_{s}").checkpoint_steps()
        )
        assert (tmp_path / "ens" / f"seed_{s}" / "config.yaml").read_text() == (
            tmp_path / "sep" / f"seed_{s}" / "config.yaml"
        ).read_text()


def test_members_stop_on_their_own_rule(tmp_path):
    """stop_after_grok ends each member where its separate run ends; the others go on."""
    overrides = [*GROKKING_DEBUG, "train.stop_after_grok=100"]
    results = _ensemble_and_separate(tmp_path, "debug", overrides, MIXED)
    ens_steps = [r.step for _, r in results]
    sep_steps = [Run(tmp_path / "sep" / f"seed_{s}").status()["step"] for s in MIXED]
    assert ens_steps == sep_steps == [220, 1500, 1500]  # one stopped by its rule, the others went on
    for s in MIXED:  # bit for bit on CPU: every evaluation record equal
        assert _metrics(tmp_path / "ens" / f"seed_{s}") == _metrics(tmp_path / "sep" / f"seed_{s}")
    for s in MIXED:
        assert Run(tmp_path / "ens" / f"seed_{s}").status()["state"] == "completed"
        assert (
            _metrics(tmp_path / "ens" / f"seed_{s}")[-1]["step"] == Run(tmp_path / "ens" / f"seed_{s}").status()["step"]
        )


def test_resume_after_kill_is_bit_identical(tmp_path, cli):
    over = []
    for o in [*GROKKING_DEBUG, "train.stop_after_grok=100", "train.eval_every=20", "train.checkpoint_every=100"]:
        over += ["--set", o]
    over += ["--set", "train.snapshot_every=200"]
    args = ["train", "--config", "debug", *over, "--seeds", "3,0,4"]
    assert cli(*args, "--out", tmp_path / "straight").returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "groklab", *args, "--out", str(killed)])
    deadline = time.time() + 120
    while time.time() < deadline:
        if (killed / "seed_4" / "checkpoints").exists() and Run(killed / "seed_4").checkpoints()[-1][0] >= 500:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(Run(m).status()["state"] == "running" for m in ensemble_members(killed))  # it died mid-run
    r = cli("train", "--resume", killed)
    assert r.returncode == 0, r.stderr
    for s in MIXED:
        a, b = tmp_path / "straight" / f"seed_{s}", killed / f"seed_{s}"
        (s1, w1), (s2, w2) = _final(a), _final(b)
        assert s1 == s2
        assert all(torch.equal(w1[k], w2[k]) for k in w1)
        assert _metrics(a) == _metrics(b)
        snaps = [{st: p.read_bytes() for st, p in Run(d).snapshots()} for d in (a, b)]
        assert snaps[0] == snaps[1]
        assert Run(b).status()["state"] == "completed"


@pytest.mark.parametrize(
    "seeds,message",
    [
        ("", "empty"),
        ("7-3", "reversed"),
        ("1,2,1", "given twice"),
        ("a-b", "not a range"),
        ("0-3999", "more than this machine"),  # 4,000 nanda members do not fit in memory
    ],
)
def test_bad_seeds_are_one_line_errors(tmp_path, cli, seeds, message):
    r = cli("train", "--config", "nanda", "--seeds", seeds, "--out", tmp_path / "ens")
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "ens").exists()


def test_interventions_are_refused_with_the_reason(tmp_path, cli):
    r = cli("train", "--config", "debug", "--set", "optim.grokfast.kind=ema", "--seeds", "0-1", "--out", tmp_path / "e")
    assert r.returncode == 2 and "optim.grokfast" in r.stderr and "not batched" in r.stderr
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("hyper", [[(1e-2, 1.0)] * 2, [(1e-2, 1.0), (3e-3, 0.1)]], ids=["shared", "own"])
@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_stacked_optimizer_is_torchs_update_per_member(name, hyper):
    """Members with shared (bit for bit) or their own lr and weight decay (to float rounding):
    each slice follows torch's optimizer."""
    torch.manual_seed(0)
    cfg = load_config("debug", [f"optim.name={name}", "optim.momentum=0.9"]).optim
    tol = 0 if hyper[0] == hyper[1] else 1e-6
    start = [torch.randn(5, 3) for _ in hyper]
    refs = [torch.nn.Parameter(s.clone()) for s in start]
    opts = [
        build_optimizer(torch.nn.ParameterList([p]), type(cfg)(**{**cfg.__dict__, "lr": lr, "weight_decay": wd}))
        for p, (lr, wd) in zip(refs, hyper, strict=False)
    ]
    stacked = {"w": torch.stack(start).requires_grad_()}
    opt = StackedOptimizer(stacked, cfg, [wd for _, wd in hyper])
    for _ in range(6):
        grads = torch.randn(2, 5, 3)
        for p, o, g in zip(refs, opts, grads, strict=False):
            p.grad = g.clone()
            o.step()
        stacked["w"].grad = grads.clone()
        opt.step([lr for lr, _ in hyper])
    for m, p in enumerate(refs):
        torch.testing.assert_close(stacked["w"][m].detach(), p.detach(), rtol=tol, atol=0)
    # its state converts to torch's layout: the member state is what the torch optimizer holds
    for m, o in enumerate(opts):
        mine, theirs = opt.member_state(m)[0], o.state[refs[m]]
        assert set(mine) == set(theirs)
        for k in theirs:
            torch.testing.assert_close(mine[k], theirs[k], rtol=tol, atol=0)


def test_ensemble_index_lists_the_members(tmp_path, cli):
    r = cli("train", "--config", "debug", "--set", "train.steps=20", "--seeds", "3,5", "--out", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    assert ensemble_members(tmp_path / "e") == [tmp_path / "e" / "seed_3", tmp_path / "e" / "seed_5"]
    index = json.loads((tmp_path / "e" / "ensemble.json").read_text())
    assert index["seeds"] == [3, 5]
    for s in (3, 5):
        cfg = Run(tmp_path / "e" / f"seed_{s}").config
        assert cfg.seed == s and cfg.task.split_seed == s
    # an existing ensemble is not overwritten
    r = cli("train", "--config", "debug", "--seeds", "3,5", "--out", tmp_path / "e")
    assert r.returncode == 2 and "already an ensemble" in r.stderr


def test_reproduce_with_seeds_writes_the_aggregate_of_its_members(tmp_path, cli):
    """`groklab reproduce --seeds`: the members are trained together, analysed and reported, and
    the aggregate's median grokking step is the median of the members' own analyses."""
    from groklab.analysis.stats import seed_stats
    from groklab.runs import read_aggregate

    over = []
    for o in GROKKING_DEBUG:
        over += ["--set", o]
    r = cli("reproduce", "--config", "debug", *over, "--seeds", "3,0,4", "--out", tmp_path / "e", timeout=900)
    assert r.returncode == 0, r.stderr
    members = [Run(tmp_path / "e" / f"seed_{s}") for s in MIXED]
    assert all((m.path / "report.html").is_file() for m in members)
    steps = [m.analysis.summary.events.grokking_step for m in members]
    agg = read_aggregate(tmp_path / "e")
    q = agg.quantity("grokking_step")
    assert q.median == seed_stats(steps).median and q.n == 3
    page = (tmp_path / "e" / "report.html").read_text()
    assert f"{q.median:g}" in page and "seed_0/report.html" in page
    assert "grokking_step: median" in r.stdout
