"""One sweep point, executed in a worker process (local pool or Ray): start, resume or skip its run.

What a point's run directory says decides what happens:

=====================================  ==========================================================
no directory                           start training
a directory without ``config.yaml``    a sweep killed while creating it: remove it, start
``completed``                          skip
``failed``                             skip, unless ``retry_failed``: then resume (or start over)
``interrupted``, or ``running`` with   resume from the newest valid checkpoint (bit-identical to
no live lock (its writer was killed)   never having stopped); start over when there is none yet
``running`` with a live lock           wait up to ``lock_wait_s`` for it, then report it busy
=====================================  ==========================================================

Points that differ only in keys that leave tensor shapes alone (``groklab sweep --batch N``) and
have no directory yet are trained together as one ensemble (:class:`BatchTask`,
:mod:`groklab.train.ensemble`); each still gets its own run directory and its own result.

Workers never write outside their points' run directories; the sweep's own files are written by
the parent process only.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab.runs import Run, RunError, RunLockedError, is_run_dir

__all__ = [
    "BatchTask",
    "PointResult",
    "PointTask",
    "execute_point",
    "execute_task",
    "expand_outcome",
    "init_local_worker",
]


@dataclass(frozen=True)
class PointTask:
    run_id: str
    run_dir: str
    config: dict[str, Any]  # the resolved config
    threads: int  # torch intra-op threads for this point
    retry_failed: bool = False
    lock_wait_s: float = 30.0


@dataclass(frozen=True)
class PointResult:
    run_id: str
    state: str  # completed | failed | interrupted | running (busy: another live process holds it)
    step: int | None
    error: str | None
    action: str  # started | resumed | restarted | skipped | busy | error
    seconds: float


@dataclass(frozen=True)
class BatchTask:
    """Fresh points (no run directory yet) whose configs share a batch key, trained as one ensemble."""

    points: tuple[PointTask, ...]

    @property
    def run_id(self) -> str:
        return "+".join(t.run_id for t in self.points)


Outcome = PointResult | list[PointResult] | BaseException


def expand_outcome(
    task: PointTask | BatchTask, outcome: Outcome
) -> list[tuple[PointTask, PointResult | BaseException]]:
    """One (point, result) per point: a batch's results, or its exception for each of its points."""
    if not isinstance(task, BatchTask):
        assert not isinstance(outcome, list)
        return [(task, outcome)]
    if isinstance(outcome, list):
        return list(zip(task.points, outcome, strict=True))
    return [(t, outcome) for t in task.points]


def execute_task(task: PointTask | BatchTask) -> PointResult | list[PointResult]:
    """What a worker runs: one point, or a batch of points together."""
    return execute_batch(task) if isinstance(task, BatchTask) else execute_point(task)


_STOP = threading.Event()  # a SIGINT arrived while the trainer's own handler was not installed
_BUSY = threading.Event()  # a point is executing in this process


def execute_point(task: PointTask) -> PointResult:
    """Bring one point's run directory to an end state; never raises for a problem of the point."""
    import torch

    torch.set_num_threads(max(1, task.threads))
    t0 = time.perf_counter()
    if _STOP.is_set():
        return PointResult(task.run_id, "interrupted", None, "stopped before it started", "skipped", 0.0)
    _BUSY.set()
    try:
        state, step, error, action = _execute(task)
    except RunLockedError as e:
        state, step, error, action = "running", None, str(e), "busy"
    except Exception as e:  # recorded as the point's failure; the sweep goes on
        state, step, error, action = "failed", None, f"{type(e).__name__}: {e}".strip(": "), "error"
        if is_run_dir(Path(task.run_dir)):
            step = Run(Path(task.run_dir)).status().get("step")
    finally:
        _BUSY.clear()
    return PointResult(task.run_id, state, step, error, action, round(time.perf_counter() - t0, 3))


def execute_batch(batch: BatchTask) -> list[PointResult]:
    """Train a batch's points as one ensemble; a point whose directory appeared meanwhile, or a batch
    that cannot start, falls back to one point at a time. Never raises for a problem of a point."""
    import torch

    from groklab.config import config_from_dict
    from groklab.train.ensemble import start_ensemble

    tasks = batch.points
    torch.set_num_threads(max(1, tasks[0].threads))
    t0 = time.perf_counter()
    if _STOP.is_set():
        return [PointResult(t.run_id, "interrupted", None, "stopped before it started", "skipped", 0.0) for t in tasks]
    paths = [Path(t.run_dir) for t in tasks]
    for path in paths:
        if path.exists() and not is_run_dir(path):
            shutil.rmtree(path)  # half-created by a killed sweep: nothing trained yet
    if any(path.exists() for path in paths):
        return [execute_point(t) for t in tasks]
    _BUSY.set()
    try:
        results = start_ensemble(
            [config_from_dict(t.config) for t in tasks], paths, on_eval=lambda step, n: _pass_on_stop(None)
        )
    except RunLockedError as e:
        return [PointResult(t.run_id, "running", None, str(e), "busy", 0.0) for t in tasks]
    except Exception as e:  # recorded as each point's failure; the sweep goes on
        error = f"{type(e).__name__}: {e}".strip(": ")
        steps = [Run(p).status().get("step") if is_run_dir(p) else None for p in paths]
        return [PointResult(t.run_id, "failed", s, error, "error", 0.0) for t, s in zip(tasks, steps, strict=True)]
    finally:
        _BUSY.clear()
    seconds = round(time.perf_counter() - t0, 3)
    return [
        PointResult(t.run_id, r.state, r.step, r.error, "started", seconds)
        for t, (_, r) in zip(tasks, results, strict=True)
    ]


def _execute(task: PointTask) -> tuple[str, int | None, str | None, str]:
    from groklab.config import config_from_dict
    from groklab.train import resume_training, start_training

    path = Path(task.run_dir)
    cfg = config_from_dict(task.config)
    if path.exists() and not is_run_dir(path):
        shutil.rmtree(path)  # half-created by a killed sweep: nothing trained yet
    if not path.exists():
        _, result = start_training(cfg, path, on_eval=_pass_on_stop)
        return result.state, result.step, result.error, "started"

    run = Run(path)
    if run.config_dict() != task.config:
        raise RunError(f"{path}: config.yaml differs from this point's config (edited by hand?)")
    status = run.status()
    if status["state"] == "completed" or (status["state"] == "failed" and not task.retry_failed):
        return status["state"], status.get("step"), status.get("error"), "skipped"
    deadline = time.monotonic() + task.lock_wait_s
    while run.is_locked() and time.monotonic() < deadline:
        time.sleep(0.5)  # e.g. a worker of a killed sweep, checkpointing before it exits
    if not run.checkpoints():
        if run.is_locked():
            raise RunLockedError(f"{path}: locked by another live process")
        shutil.rmtree(path)  # killed before its first checkpoint: start over
        _, result = start_training(cfg, path, on_eval=_pass_on_stop)
        return result.state, result.step, result.error, "restarted"
    _, result = resume_training(path, on_eval=_pass_on_stop)
    return result.state, result.step, result.error, "resumed"


# -- local pool workers ----------------------------------------------------------------------------
def init_local_worker(parent_pid: int) -> None:
    """Pool initializer. The worker leaves the terminal's process group, so Ctrl-C reaches only the
    parent, which forwards one SIGINT to each worker: the trainer then checkpoints and stops. A
    SIGINT that lands outside the training loop (setting up, first evaluation, between points) is
    remembered and passed on to the trainer at its next evaluation, and keeps new points from
    starting. If the parent dies (even by SIGKILL), the worker stops its training the same way and
    exits, so no orphan goes on training or holding a run's lock."""
    os.setpgrp()
    signal.signal(signal.SIGINT, lambda signum, frame: _STOP.set())
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()


def _pass_on_stop(result: Any) -> None:
    """``on_eval`` hook: inside the loop the trainer's SIGINT handler is installed; re-raise a
    remembered SIGINT so that it checkpoints and stops."""
    if _STOP.is_set():
        _STOP.clear()
        os.kill(os.getpid(), signal.SIGINT)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + 600
    while _BUSY.is_set() and time.monotonic() < deadline:
        time.sleep(0.2)
    os._exit(1)
