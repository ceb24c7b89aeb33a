"""A Rich progress display for a running sweep (points done / running / failed, ETA)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from groklab.sweeps.runner import SweepProgress

__all__ = ["sweep_display"]


@contextmanager
def sweep_display(console: Console, name: str, total: int, quiet: bool) -> Iterator[Callable[[SweepProgress], None]]:
    """Yield an ``on_update`` callback: a live progress bar on a terminal, nothing in pipes or
    with ``quiet``."""
    if quiet or not console.is_terminal:
        yield lambda progress: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"sweep {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(name, total=total, counts="")
        first = [True]

        def update(p: SweepProgress) -> None:
            if first[0]:  # points finished by earlier invocations must not count towards the speed
                bar.reset(task, total=p.total, completed=p.finished)
                first[0] = False
            counts = f"done {p.completed}  running {p.running}  failed {p.failed}  queued {p.queued}"
            if p.stopping:
                counts += "  [yellow]stopping: points checkpoint and stop[/]"
            bar.update(task, completed=p.finished, counts=counts)

        yield update
