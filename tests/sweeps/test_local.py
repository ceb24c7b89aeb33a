"""The local executor end to end, through the command line: invalid points, reruns, Ctrl-C, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import yaml
from sweep_helpers import GROKLAB, TINY, all_metrics, groklab, read_summary

from groklab.runs import Run, read_jsonl
from groklab.sweeps import expand, parse_spec
from groklab.sweeps.executors import LocalExecutor, threads_per_point
from groklab.sweeps.page import sweep_page
from groklab.sweeps.runner import run_sweep

VALID = {0.5, 0.8, 0.9}


def states(sweep_dir: Path) -> dict[str, str]:
    return {p.name: Run(p).status()["state"] for p in sorted((sweep_dir / "runs").iterdir())}


def snapshot(sweep_dir: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file under runs/."""
    return {str(f): (f.stat().st_mtime_ns, f.stat().st_size) for f in (sweep_dir / "runs").rglob("*") if f.is_file()}


def evals_logged(sweep_dir: Path) -> int:
    runs = sweep_dir / "runs"
    return sum(len(read_jsonl(p / "metrics.jsonl")) for p in runs.iterdir()) if runs.is_dir() else 0


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_valid_points_complete_and_invalid_ones_are_recorded(local_sweep):
    out, proc = local_sweep
    assert proc.returncode == 1, proc.stderr  # not every point completed: two are invalid
    assert "6 completed, 2 failed" in proc.stdout
    rows = read_summary(out)
    assert len(rows) == 8
    assert list(rows[0])[:3] == ["run_id", "task.train_frac", "seed"]
    for row in rows:
        if float(row["task.train_frac"]) in VALID:
            assert (row["state"], row["steps"], row["error"]) == ("completed", "300", "")
            assert float(row["train_acc"]) > 0.9  # the debug model memorizes in 300 steps
            metrics = Run(out / "runs" / row["run_id"]).metric_records()
            assert row["test_acc"] == str(metrics[-1]["test_acc"])
        else:
            assert row["state"] == "failed"
            assert row["error"] == "task.train_frac: must be in (0, 1), got 1.5"
            assert not (out / "runs" / row["run_id"]).exists()
    failures = json.loads((out / "failures.json").read_text())
    assert sorted(failures) == sorted(r["run_id"] for r in rows if r["state"] == "failed")
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(r["run_id"] for r in rows if r["error"] == "")
    doc = yaml.safe_load((out / "sweep.yaml").read_text())
    assert doc["spec"]["name"] == "tiny" and len(doc["points"]) == 8
    assert (out / "figures" / "grokking_step_vs_task_train_frac.png").stat().st_size > 1000


def test_running_again_retrains_nothing(local_sweep):
    out, _ = local_sweep
    before, summary = snapshot(out), (out / "summary.csv").read_text()
    proc = groklab("sweep", TINY, "--out", out, "--workers", "2")
    assert proc.returncode == 1 and "6 completed, 2 failed" in proc.stdout
    assert snapshot(out) == before
    assert (out / "summary.csv").read_text() == summary


def test_sweep_page_has_every_point_and_the_diagram(local_sweep):
    out, _ = local_sweep
    page = sweep_page(out)
    assert page.startswith("<!doctype html>")
    for row in read_summary(out):
        assert f"<td class='l'>{row['run_id']}</td>" in page
    assert page.count("data:image/png;base64,") == 1  # one varied axis (seeds are replicates)
    assert "task.train_frac: must be in (0, 1), got 1.5" in page


def test_ctrl_c_then_kill_then_rerun_completes_as_if_never_stopped(tmp_path, local_sweep):
    reference, _ = local_sweep
    out = tmp_path / "sweep"
    cmd = [str(GROKLAB), "sweep", str(TINY), "--out", str(out), "--workers", "2"]

    # Ctrl-C: running points checkpoint and stop, nothing new starts, the sweep exits.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: evals_logged(out) >= 4)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 1
    after_sigint = states(out)
    assert "interrupted" in after_sigint.values(), after_sigint
    assert len(after_sigint) < 6 or "completed" not in set(after_sigint.values())
    assert not any(Run(p).is_locked() for p in (out / "runs").iterdir())

    # kill -9 of the parent mid-way: its workers notice, checkpoint and stop.
    logged = evals_logged(out)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: evals_logged(out) >= logged + 3)
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: not any(Run(p).is_locked() for p in (out / "runs").iterdir()), timeout=60)
    assert set(states(out).values()) != {"completed"} or len(states(out)) < 6

    proc = groklab("sweep", TINY, "--out", out, "--workers", "2")
    assert proc.returncode == 1 and "6 completed, 2 failed" in proc.stdout, proc.stdout + proc.stderr
    assert set(states(out).values()) == {"completed"}
    # resumed runs are bit-identical to runs that were never stopped
    assert all_metrics(out) == all_metrics(reference)
    assert [r["state"] for r in read_summary(out)] == [r["state"] for r in read_summary(reference)]


def test_a_worker_killed_mid_point_is_replaced_and_the_point_resumed(tmp_path, local_sweep):
    reference, _ = local_sweep
    data = yaml.safe_load(TINY.read_text())
    data["grid"] = {"task.train_frac": [0.8], "seed": [0, 1]}  # two of the tiny points: same run ids
    spec = parse_spec(data)
    out = tmp_path / "sweep"
    killed: list[int] = []

    def kill_a_training_worker() -> None:
        """SIGKILL the process holding a run's lock (its pid is in .lock) once it has trained a bit."""
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for run in (out / "runs").glob("*"):
                if len(read_jsonl(run / "metrics.jsonl")) >= 3 and Run(run).is_locked():
                    try:
                        pid = int((run / ".lock").read_text())
                    except ValueError:  # being written
                        continue
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_a_training_worker, daemon=True)
    thread.start()
    # the same threads per point as the reference sweep (`--workers 2`), so the bits can match
    outcome = run_sweep(spec, expand(spec), out, LocalExecutor(2), threads=threads_per_point(2), max_retries=1)
    thread.join()
    assert killed, "no worker was killed"
    assert outcome.counts == {"completed": 2}
    ours, theirs = all_metrics(out), all_metrics(reference)
    assert ours == {k: theirs[k] for k in ours}  # resumed from the last checkpoint, bit for bit


def test_a_point_that_fails_in_training_is_skipped_unless_retry_failed(tmp_path):
    spec = parse_spec(
        {"base": "debug", "set": {"train.steps": 40, "train.eval_every": 20}, "grid": {"optim.lr": [3e-3, 1e30]}}
    )
    out = tmp_path / "sweep"
    first = run_sweep(spec, expand(spec), out, LocalExecutor(2), threads=1)
    assert first.counts == {"completed": 1, "failed": 1}
    (good, bad) = first.rows
    assert good["state"] == "completed" and good["steps"] == 40
    assert bad["state"] == "failed" and bad["error"].startswith("non-finite training loss (nan) at step")
    assert read_summary(out)[1]["error"] == bad["error"]

    before = snapshot(out)
    again = run_sweep(spec, expand(spec), out, LocalExecutor(2), threads=1)
    assert again.counts == first.counts and snapshot(out) == before  # the failed point was not touched

    retried = run_sweep(spec, expand(spec), out, LocalExecutor(2), threads=1, retry_failed=True)
    assert retried.counts == first.counts  # it fails again, deterministically
    changed = {f for f in snapshot(out) if snapshot(out)[f] != before.get(f)}
    assert changed and all(bad["run_id"] in f for f in changed)  # only the failed run was retried
