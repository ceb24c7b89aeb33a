"""The sweep runner: one loop that plans, submits points to an executor, and aggregates as they end.

Planning reads each point's run directory (see :mod:`groklab.sweeps.worker` for what each state
means): completed points are skipped, failed ones too unless ``retry_failed``, the rest are queued.
Invalid points (a value out of range) are recorded as failed in ``failures.json`` and never run.
At most ``executor.capacity`` points are in flight; as each one ends, ``summary.csv`` is rewritten
and the phase diagrams are refreshed (at most every ``figure_every_s`` seconds, and at the end).

A point whose worker process died is resubmitted up to ``max_retries`` times (it resumes from its
last checkpoint), then recorded as failed: in its run directory's status when it has one, else in
``failures.json``.

Ctrl-C (SIGINT) or SIGTERM: no new points start, running points are asked to checkpoint and stop
(their runs end ``interrupted`` and resume on the next run of the sweep); a second signal stops
the workers at once (their runs resume from their previous checkpoint).
"""

from __future__ import annotations

import io
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from groklab.runs import Run, atomic_write, is_run_dir
from groklab.sweeps.aggregate import (
    point_row,
    read_failures,
    runs_dir,
    summary_csv,
    write_failures,
    write_sweep_yaml,
)
from groklab.sweeps.executors import WorkerLost
from groklab.sweeps.figures import phase_diagrams
from groklab.sweeps.spec import Point, SweepSpec
from groklab.sweeps.worker import PointResult, PointTask

__all__ = ["Executor", "SweepOutcome", "SweepProgress", "run_sweep", "write_aggregates"]


class Executor(Protocol):
    capacity: int

    @property
    def running(self) -> int: ...
    def submit(self, task: PointTask) -> None: ...
    def poll(self, timeout: float) -> list[tuple[PointTask, PointResult | BaseException]]: ...
    def interrupt(self) -> None: ...
    def close(self, force: bool = False) -> None: ...


@dataclass
class SweepProgress:
    total: int
    finished: int  # completed + failed (including those finished before this invocation)
    completed: int
    failed: int
    running: int
    queued: int
    stopping: bool = False
    last: PointResult | None = None


@dataclass
class SweepOutcome:
    sweep_dir: Path
    rows: list[dict[str, Any]]
    stopped: bool  # interrupted by a signal
    counts: dict[str, int] = field(default_factory=dict)  # final state -> number of points


def run_sweep(
    spec: SweepSpec,
    points: list[Point],
    sweep_dir: Path,
    executor: Executor,
    *,
    threads: int,
    retry_failed: bool = False,
    max_retries: int = 1,
    lock_wait_s: float = 30.0,
    figure_every_s: float = 10.0,
    on_update: Callable[[SweepProgress], None] | None = None,
) -> SweepOutcome:
    """Run every point of ``points`` into ``sweep_dir/runs`` and keep the aggregates current.
    The executor is closed on return."""
    sweep_dir = Path(sweep_dir).absolute()  # workers (Ray's above all) may run in another directory
    runs_dir(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_sweep_yaml(sweep_dir, spec.raw, points)
    failures = {rid: err for rid, err in read_failures(sweep_dir).items() if rid in {p.run_id for p in points}}
    queue: deque[Point] = deque()
    completed = failed = 0
    for p in points:
        path = runs_dir(sweep_dir) / p.run_id
        if not p.valid:
            failures[p.run_id] = p.error or "invalid"
            failed += 1
            continue
        state = Run(path).status()["state"] if is_run_dir(path) else ("failed" if p.run_id in failures else None)
        if state == "completed":
            completed += 1
        elif state == "failed" and not retry_failed:
            failed += 1
        else:
            failures.pop(p.run_id, None)
            queue.append(p)
    write_failures(sweep_dir, failures)

    varied = spec.varied_keys
    rows = {p.run_id: point_row(sweep_dir, p.run_id, p.values, failures.get(p.run_id)) for p in points}
    write_aggregates(sweep_dir, spec.name, varied, list(rows.values()))
    last_figs = time.monotonic()
    by_id = {p.run_id: p for p in points}
    attempts: dict[str, int] = {}
    progress = SweepProgress(len(points), completed + failed, completed, failed, 0, len(queue))

    def task_for(p: Point) -> PointTask:
        return PointTask(p.run_id, str(runs_dir(sweep_dir) / p.run_id), p.config, threads, retry_failed, lock_wait_s)

    def update(last: PointResult | None = None) -> None:
        progress.running, progress.queued, progress.last = executor.running, len(queue), last
        progress.finished = progress.completed + progress.failed
        if on_update is not None:
            on_update(progress)

    stop = _StopFlag()
    update()
    try:
        with stop.installed():
            while queue or executor.running:
                if stop.count >= 2:
                    executor.close(force=True)
                    break
                if stop.count == 1 and not progress.stopping:
                    progress.stopping = True
                    queue.clear()
                    executor.interrupt()
                    update()
                while queue and executor.running < executor.capacity and not stop.count:
                    executor.submit(task_for(queue.popleft()))
                    update()
                for task, outcome in executor.poll(timeout=0.25):
                    result = _settle(task, outcome, attempts, max_retries, failures, stopping=bool(stop.count))
                    if result is None:  # the worker died: resubmit first
                        queue.appendleft(by_id[task.run_id])
                        continue
                    if result.state == "completed":
                        progress.completed += 1
                    elif result.state == "failed":
                        progress.failed += 1
                    write_failures(sweep_dir, failures)
                    p = by_id[task.run_id]
                    rows[p.run_id] = point_row(sweep_dir, p.run_id, p.values, failures.get(p.run_id))
                    figs = time.monotonic() - last_figs >= figure_every_s
                    write_aggregates(sweep_dir, spec.name, varied, list(rows.values()), figures=figs)
                    last_figs = time.monotonic() if figs else last_figs
                    update(result)
    finally:
        executor.close(force=stop.count >= 2)
    final = [point_row(sweep_dir, p.run_id, p.values, failures.get(p.run_id)) for p in points]
    write_aggregates(sweep_dir, spec.name, varied, final)
    counts: dict[str, int] = {}
    for row in final:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return SweepOutcome(sweep_dir, final, stopped=bool(stop.count), counts=counts)


def _settle(
    task: PointTask,
    outcome: PointResult | BaseException,
    attempts: dict[str, int],
    max_retries: int,
    failures: dict[str, str],
    stopping: bool,
) -> PointResult | None:
    """Turn an executor outcome into a PointResult; None means "resubmit it"."""
    if isinstance(outcome, PointResult):
        if is_run_dir(Path(task.run_dir)):
            failures.pop(task.run_id, None)
        return outcome
    path = Path(task.run_dir)
    if isinstance(outcome, KeyboardInterrupt):
        status = Run(path).status() if is_run_dir(path) else {}
        return PointResult(task.run_id, "interrupted", status.get("step"), "interrupted", "interrupted", 0.0)
    if isinstance(outcome, WorkerLost):
        attempts[task.run_id] = attempts.get(task.run_id, 0) + 1
        if attempts[task.run_id] <= max_retries and not stopping:
            return None
    error = f"{type(outcome).__name__}: {outcome}"
    if is_run_dir(path) and not Run(path).is_locked():
        run = Run(path)
        run.write_status("failed", run.status().get("step") or 0, error)
    elif not is_run_dir(path):
        failures[task.run_id] = error
    return PointResult(task.run_id, "failed", None, error, "error", 0.0)


def write_aggregates(
    sweep_dir: Path, title: str, varied: list[str], rows: list[dict[str, Any]], figures: bool = True
) -> None:
    """summary.csv always; the phase diagrams in figures/ when ``figures``."""
    atomic_write(Path(sweep_dir) / "summary.csv", summary_csv(rows, varied))
    if not figures:
        return
    for stem, fig in phase_diagrams(rows, varied, title).items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        atomic_write(Path(sweep_dir) / "figures" / f"{stem}.png", buf.getvalue())


class _StopFlag:
    """Counts SIGINT/SIGTERM while installed (main thread only); the loop polls ``count``."""

    def __init__(self) -> None:
        self.count = 0

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
