"""One row of facts per run, shared by `groklab list`, sweep summaries and the dashboard."""

from __future__ import annotations

from typing import Any

from groklab.runs import Run, RunError

__all__ = ["format_value", "run_row"]


def run_row(run: Run) -> dict[str, Any]:
    """name, op, p, train_frac, steps, state, final train/test acc and loss, grokking events."""
    row: dict[str, Any] = {"name": run.path.name, "path": str(run.path)}
    try:
        cfg = run.config_dict()
        metrics = run.metric_records()
    except RunError as e:
        row.update(state="unreadable", error=str(e))
        return row
    task = cfg.get("task", {}) if isinstance(cfg.get("task"), dict) else {}
    status = run.status()
    row.update(
        op=task.get("op"),
        p=task.get("p"),
        train_frac=task.get("train_frac"),
        steps=metrics[-1]["step"] if metrics else 0,
        state=status.get("state"),
        error=status.get("error"),
    )
    if metrics:
        last = metrics[-1]
        row.update({k: last.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")})
    row.update(_events(metrics))
    return row


def _events(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    from groklab.analysis.grokking import grokking_events

    ev = grokking_events(metrics)
    return {"memorization_step": ev.memorization_step, "grokking_step": ev.grokking_step, "delay": ev.delay}


def format_value(v: Any, empty: str = "-", float_spec: str = ".4f") -> str:
    """A table cell: ``empty`` for None, floats with ``float_spec``, anything else as str."""
    if v is None:
        return empty
    if isinstance(v, float):
        return format(v, float_spec)
    return str(v)
