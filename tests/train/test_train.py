import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from groklab.config import load_config
from groklab.runs import Run, load_checkpoint
from groklab.train import resume_training, start_training
from groklab.train.checkpoint import checkpoint_steps


def _metrics(run_dir):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in Run(run_dir).metric_records()]


def _final_weights(run_dir):
    run = Run(run_dir)
    step, path = run.checkpoints()[-1]
    return step, load_checkpoint(path)["model"]


def test_checkpoint_steps_are_log_spaced_early_and_periodic():
    assert checkpoint_steps(3500, 1000) == {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000, 3500}


def test_same_seed_gives_identical_metrics(tmp_path):
    cfg = load_config("debug", ["train.steps=60"])
    start_training(cfg, tmp_path / "a")
    start_training(cfg, tmp_path / "b")
    other = load_config("debug", ["train.steps=60", "seed=1"])
    start_training(other, tmp_path / "c")
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    assert _metrics(tmp_path / "a") != _metrics(tmp_path / "c")


def test_run_directory_layout(tmp_path):
    cfg = load_config("debug", ["train.steps=40", "train.eval_every=15"])
    run, result = start_training(cfg, tmp_path / "r")
    assert result.state == "completed" and result.step == 40
    assert json.loads((run.path / "status.json").read_text()) == {"state": "completed", "step": 40, "error": None}
    steps = [r["step"] for r in run.metric_records()]
    assert steps == [0, 15, 30, 40]
    keys = {"step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "weight_norm", "elapsed_s"}
    assert keys <= set(run.metric_records()[0])
    assert [s for s, _ in run.checkpoints()] == [0, 1, 2, 5, 10, 20, 40]
    latest = load_checkpoint(run.checkpoint_dir / "latest.pt")
    assert latest["step"] == 40
    # warmup: lr factor min(step / 10, 1) as in Nanda et al.; first logged lr at step 0 is 0
    assert run.metric_records()[0]["lr"] == 0.0 and run.metric_records()[-1]["lr"] == cfg.optim.lr
    # weight norm in the metrics is the norm of the saved weights
    sq = sum(v.double().pow(2).sum() for v in latest["model"].values())
    assert abs(run.metric_records()[-1]["weight_norm"] ** 2 - float(sq)) < 1e-6 * float(sq)


@pytest.mark.parametrize("batch", ["null", "32"])
def test_resume_in_process_is_bit_identical(tmp_path, batch):
    over = ["train.steps=90", "train.eval_every=10", "train.checkpoint_every=30", f"train.batch_size={batch}"]
    start_training(load_config("debug", over), tmp_path / "straight")
    # the same run stopped at 45 steps (its config says 45), then continued with the full budget
    run, _ = start_training(load_config("debug", over), tmp_path / "resumed")
    for step, path in run.checkpoints():
        if step > 30:
            path.unlink()  # as if killed after the checkpoint at step 30
    run.truncate_metrics(47)  # metrics logged after the checkpoint are discarded on resume
    resume_training(run.path)
    s1, w1 = _final_weights(tmp_path / "straight")
    s2, w2 = _final_weights(run.path)
    assert s1 == s2 == 90
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert _metrics(tmp_path / "straight") == _metrics(run.path)


# every intervention that carries state, on together (train/interventions.py)
INTERVENTIONS = ["optim.grokfast.kind=ema", "optim.orthogonal=true", "optim.fixed_norm=true", "train.loss=stablemax"]


@pytest.mark.parametrize("options", [[], INTERVENTIONS], ids=["plain", "interventions"])
def test_resume_after_kill_is_bit_identical(tmp_path, cli, options):
    over = ["--set", "train.steps=1500", "--set", "train.eval_every=50", "--set", "train.checkpoint_every=100"]
    over += ["--set", "train.snapshot_every=200"]
    for option in options:
        over += ["--set", option]
    assert cli("train", "--config", "debug", *over, "--out", tmp_path / "straight").returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "groklab", "train", "--config", "debug", *over, "--out", str(killed)]
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpts = Run(killed).checkpoints() if (killed / "checkpoints").exists() else []
        if ckpts and ckpts[-1][0] >= 300:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = Run(killed).status()
    assert status["state"] == "running" and status["step"] < 1500  # it really died mid-run
    # a torn last line, as a kill mid-write leaves it
    with open(killed / "metrics.jsonl", "a") as f:
        f.write('{"step": 99999, "train_lo')
    r = cli("train", "--resume", killed)
    assert r.returncode == 0, r.stderr
    s1, w1 = _final_weights(tmp_path / "straight")
    s2, w2 = _final_weights(killed)
    assert s1 == s2 == 1500
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert _metrics(tmp_path / "straight") == _metrics(killed)
    # weights-only snapshots are rewritten after the checkpoint, byte for byte
    snapshots = [{s: p.read_bytes() for s, p in Run(d).snapshots()} for d in (tmp_path / "straight", killed)]
    assert len(snapshots[0]) >= 1500 // 200 and snapshots[0] == snapshots[1]


def test_sigint_checkpoints_and_marks_interrupted(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "groklab",
            "train",
            "--config",
            "debug",
            "--set",
            "train.steps=100000",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    status = Run(out).status()
    assert status["state"] == "interrupted" and proc.returncode == 1
    assert Run(out).checkpoints()[-1][0] == status["step"] > 0


def test_non_finite_loss_fails_with_state_saved(tmp_path):
    cfg = load_config(
        "debug", ["optim.lr=1e30", "optim.warmup_steps=0", "optim.weight_decay=0", "train.loss_dtype=float32"]
    )
    run, result = start_training(cfg, tmp_path / "r")
    assert result.state == "failed" and "non-finite" in result.error
    status = run.status()
    assert status["state"] == "failed" and "non-finite" in status["error"]
    assert run.checkpoints()[-1][0] == status["step"]


def test_stop_after_grok(tmp_path):
    # Whether this small task groks within the budget hinges on float rounding: for seeds 0-4, two
    # runs never reach 0.99 test accuracy in 5000 steps, and which two changes with the order of
    # float32 sums in the folded path. Seed 48 (the session's analysed run, tests/conftest.py) groks at ~200.
    over = ["task.train_frac=0.8", "optim.lr=5e-3", "optim.weight_decay=2.0", "train.steps=5000", "train.eval_every=10"]
    cfg = load_config("debug", [*over, "train.stop_after_grok=50", "seed=48"])
    run, result = start_training(cfg, tmp_path / "r")
    m = run.metric_records()
    assert result.state == "completed" and result.step < 5000
    held = [r["step"] for r in m if r["test_acc"] >= 0.99]
    assert m[-1]["test_acc"] >= 0.99 and result.step - held[0] >= 50
    assert all(r["test_acc"] >= 0.99 for r in m if r["step"] >= result.step - 50)
