"""Readers of a run being trained (DESIGN section 5): ``analyze``, ``figures``, ``report``, ``list``,
the Python API and the dashboard's data layer read a consistent prefix of what is saved (their
choice, documented in :mod:`groklab.runs` and the README), without a traceback, while a real
training process writes the run; the training is not disturbed: its metrics and weights equal
those of an undisturbed run, bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch
from typer.testing import CliRunner

import groklab as gl
from groklab.cli import app
from groklab.config import load_config
from groklab.files import load_checkpoint
from groklab.runs import Run
from groklab.train import Callback, start_training

SETS = ["train.steps=100000", "train.eval_every=50", "train.checkpoint_every=200"]


def invoke(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0 and result.exception is None, (result.stdout, result.stderr, result.exception)
    return result


class StopAt(Callback):
    """Keep the weights of step ``stop`` and end training at the first evaluation from there."""

    def __init__(self, stop: int) -> None:
        self.stop, self.weights = stop, None

    def on_step(self, trainer, loss) -> None:
        if trainer.step == self.stop:
            self.weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def on_eval(self, trainer, result) -> bool:
        return trainer.step >= self.stop


def test_readers_of_a_run_in_training_see_a_prefix_and_leave_it_undisturbed(tmp_path):
    run_dir = tmp_path / "runs" / "live"
    args = [a for s in SETS for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "groklab", "train", "--config", "debug", *args, "--out", str(run_dir), "-q"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while len(Run(run_dir).checkpoint_steps()) < 9 or not Run(run_dir).is_locked():  # 0 ... 200
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        run = gl.load_run(run_dir)  # the Python API
        seen = run.steps
        assert run.metrics["step"].is_monotonic_increasing and run.model().cfg == run.config.model
        invoke("analyze", run_dir, "-q")
        summary = Run(run_dir).analysis.summary
        assert summary.state == "running" and summary.analysed_step >= seen[-1]
        assert any("still being written" in w for w in summary.warnings)
        listing = invoke("list", "--runs-dir", tmp_path / "runs").stdout
        assert "live" in listing and "running" in listing
        invoke("figures", run_dir, "-q")
        invoke("report", run_dir, "-q")
        assert "running" in (run_dir / "report.html").read_text()

        from groklab.dashboard import compute, data

        refs = data.discover(tmp_path / "runs")
        assert [r.label for r in refs] == ["live"] and data.row(refs[0])["state"] == "running"
        assert data.summary(Run(run_dir)).analysed_step == summary.analysed_step
        view = compute.checkpoint_view(Run(run_dir), seen[-1])
        assert view is not None
        assert proc.poll() is None  # every reader above ran while training was going on
    finally:
        proc.send_signal(signal.SIGINT)  # checkpoint and stop
        out, err = proc.communicate(timeout=120)
    status = Run(run_dir).status()
    assert status["state"] == "interrupted", (out, err)
    stop = status["step"]

    callback = StopAt(stop)
    clean, _ = start_training(load_config("debug", SETS), tmp_path / "clean", callbacks=[callback])
    metrics = lambda r: [{k: v for k, v in m.items() if k != "elapsed_s"} for m in r.metric_records()]  # noqa: E731
    assert metrics(Run(run_dir)) == [m for m in metrics(clean) if m["step"] <= stop]
    weights = load_checkpoint(Run(run_dir).checkpoint_path(stop))["model"]
    assert all(torch.equal(weights[k], callback.weights[k]) for k in weights)
