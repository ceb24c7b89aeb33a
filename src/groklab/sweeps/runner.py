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
from groklab.sweeps.figures import lens_figures, phase_diagrams
from groklab.sweeps.spec import Point, SweepSpec
from groklab.sweeps.worker import BatchTask, PointResult, PointTask

__all__ = ["Executor", "SweepOutcome", "SweepProgress", "run_sweep", "write_aggregates"]


class Executor(Protocol):
    capacity: int

    @property
    def running(self) -> int: ...
    def submit(self, task: PointTask | BatchTask) -> None: ...
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
    batch: int = 1,
) -> SweepOutcome:
    """Run every point of ``points`` into ``sweep_dir/runs`` and keep the aggregates current.
    Up to ``batch`` fresh points that differ only in shape-free keys train together as one
    ensemble (:func:`groklab.train.ensemble.batch_key`). The executor is closed on return."""
    sweep = _Sweep(spec, points, Path(sweep_dir).absolute(), executor, threads, retry_failed, lock_wait_s)
    sweep.batch = batch
    sweep.plan()
    stop = _StopFlag()
    try:
        with stop.installed():
            sweep.loop(stop, max_retries, figure_every_s, on_update)
    finally:
        executor.close(force=stop.count >= 2)
    final = sweep.rows_now()
    write_aggregates(sweep.dir, spec.name, spec.varied_keys, final)
    counts: dict[str, int] = {}
    for row in final:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return SweepOutcome(sweep.dir, final, stopped=bool(stop.count), counts=counts)


class _Sweep:
    """The state of one invocation of a sweep: its queue, failures and summary rows."""

    def __init__(
        self, spec: SweepSpec, points: list[Point], sweep_dir: Path, executor: Executor, threads: int,
        retry_failed: bool, lock_wait_s: float,
    ) -> None:  # fmt: skip
        self.spec, self.points, self.dir, self.executor = spec, points, sweep_dir, executor  # absolute: workers
        self.threads, self.retry_failed, self.lock_wait_s = threads, retry_failed, lock_wait_s  # may run elsewhere
        self.by_id = {p.run_id: p for p in points}
        self.queue: deque[Point] = deque()
        self.failures: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.batch = 1

    def plan(self) -> None:
        """Queue what needs running; count what is done; record invalid points as failed."""
        runs_dir(self.dir).mkdir(parents=True, exist_ok=True)
        write_sweep_yaml(self.dir, self.spec.raw, self.points)
        self.failures = {rid: err for rid, err in read_failures(self.dir).items() if rid in self.by_id}
        completed = failed = 0
        for p in self.points:
            path = runs_dir(self.dir) / p.run_id
            if not p.valid:
                self.failures[p.run_id] = p.error or "invalid"
                failed += 1
                continue
            known = "failed" if p.run_id in self.failures else None
            state = Run(path).status()["state"] if is_run_dir(path) else known
            if state == "completed":
                completed += 1
            elif state == "failed" and not self.retry_failed:
                failed += 1
            else:
                self.failures.pop(p.run_id, None)
                self.queue.append(p)
        write_failures(self.dir, self.failures)
        self.rows = {p.run_id: self.row(p) for p in self.points}
        write_aggregates(self.dir, self.spec.name, self.spec.varied_keys, list(self.rows.values()))
        self.progress = SweepProgress(len(self.points), completed + failed, completed, failed, 0, len(self.queue))

    def row(self, p: Point) -> dict[str, Any]:
        return point_row(self.dir, p.run_id, p.values, self.failures.get(p.run_id))

    def rows_now(self) -> list[dict[str, Any]]:
        return [self.row(p) for p in self.points]

    def task_for(self, p: Point) -> PointTask:
        path = str(runs_dir(self.dir) / p.run_id)
        return PointTask(p.run_id, path, p.config, self.threads, self.retry_failed, self.lock_wait_s)

    def next_task(self) -> PointTask | BatchTask:
        """The next queued point, with up to ``batch - 1`` more queued fresh points of its batch key
        (fewer when that leaves workers idle: the points of a key are shared out over them)."""
        first = self.queue.popleft()
        key = self._batch_key(first)
        if key is None:
            return self.task_for(first)
        same = [p for p in self.queue if self._batch_key(p) == key]
        share = -(-(len(same) + 1) // max(1, self.executor.capacity))  # spread over the workers
        mates = same[: min(self.batch, share) - 1]
        if not mates:
            return self.task_for(first)
        for p in mates:
            self.queue.remove(p)
        return BatchTask(tuple(self.task_for(p) for p in [first, *mates]))

    def _batch_key(self, p: Point) -> str | None:
        """The point's batch key, or None when it trains alone (batch 1, a directory exists
        already, or its config is not batched)."""
        from groklab.config import config_from_dict
        from groklab.limits import ensemble_too_large
        from groklab.train.ensemble import batch_key, batch_refusal

        if self.batch < 2 or (runs_dir(self.dir) / p.run_id).exists():
            return None
        cfg = config_from_dict(p.config)
        if batch_refusal(cfg) or ensemble_too_large(cfg, self.batch):
            return None
        return batch_key(cfg)

    def loop(
        self,
        stop: _StopFlag,
        max_retries: int,
        figure_every_s: float,
        on_update: Callable[[SweepProgress], None] | None,
    ) -> None:
        """Submit while there is capacity, settle what ends, until nothing is queued or running."""
        ex, progress, last_figs = self.executor, self.progress, time.monotonic()

        def update(last: PointResult | None = None) -> None:
            progress.running, progress.queued, progress.last = ex.running, len(self.queue), last
            progress.finished = progress.completed + progress.failed
            if on_update is not None:
                on_update(progress)

        update()
        while self.queue or ex.running:
            if stop.count >= 2:
                ex.close(force=True)
                return
            if stop.count == 1 and not progress.stopping:
                progress.stopping = True
                self.queue.clear()
                ex.interrupt()
                update()
            while self.queue and ex.running < ex.capacity and not stop.count:
                ex.submit(self.next_task())
                update()
            for task, outcome in ex.poll(timeout=0.25):
                result = _settle(task, outcome, self.attempts, max_retries, self.failures, stopping=bool(stop.count))
                if result is None:  # the worker died: resubmit first
                    self.queue.appendleft(self.by_id[task.run_id])
                    continue
                progress.completed += result.state == "completed"
                progress.failed += result.state == "failed"
                write_failures(self.dir, self.failures)
                self.rows[task.run_id] = self.row(self.by_id[task.run_id])
                figs = time.monotonic() - last_figs >= figure_every_s
                write_aggregates(
                    self.dir, self.spec.name, self.spec.varied_keys, list(self.rows.values()), figures=figs
                )
                last_figs = time.monotonic() if figs else last_figs
                update(result)


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
    figs = phase_diagrams(rows, varied, title) | lens_figures(sweep_dir, rows, varied, title)
    for stem, fig in figs.items():
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
