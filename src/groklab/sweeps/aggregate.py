"""The sweep directory's own files and the one-row-per-point summary (DESIGN section 7).

::

    SWEEP_DIR/
      sweep.yaml       {"spec": the spec as given, "points": [{run_id, values, error}, ...]}
      failures.json    {run_id: error} for points that failed without a usable run directory:
                       invalid points (a value out of range) and points whose worker died before
                       creating one. A point that has a run directory keeps its state there.
      runs/<run_id>/   ordinary run directories
      summary.csv      one row per point, SUMMARY_COLUMNS around the varied keys
      figures/         phase diagrams (see :mod:`groklab.sweeps.figures`)

Only the process driving the sweep writes these (atomically); workers write their run directory.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from groklab.runs import Run, RunError, atomic_write, is_run_dir
from groklab.sweeps.spec import Point, SweepError

__all__ = [
    "SUMMARY_COLUMNS",
    "point_row",
    "read_failures",
    "read_sweep",
    "summary_csv",
    "sweep_rows",
    "write_failures",
    "write_sweep_yaml",
]

SUMMARY_COLUMNS = (
    "state",
    "steps",
    "train_acc",
    "test_acc",
    "train_loss",
    "test_loss",
    "memorization_step",
    "grokking_step",
    "delay",
    "n_key_frequencies",
    "error",
)


def runs_dir(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / "runs"


def write_sweep_yaml(sweep_dir: Path, raw_spec: dict[str, Any], points: list[Point]) -> None:
    doc = {
        "spec": raw_spec,
        "points": [{"run_id": p.run_id, "values": p.values, "error": p.error} for p in points],
    }
    atomic_write(Path(sweep_dir) / "sweep.yaml", yaml.safe_dump(doc, sort_keys=False))


def read_sweep(sweep_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(spec as given, points as ``{run_id, values, error}``) of a sweep directory."""
    path = Path(sweep_dir) / "sweep.yaml"
    if not path.is_file():
        raise SweepError(f"{sweep_dir}: not a sweep directory (no sweep.yaml)")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise SweepError(f"{path}: not valid YAML") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
        raise SweepError(f"{path}: expected a mapping with spec and points")
    return doc.get("spec") or {}, doc["points"]


def read_failures(sweep_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((Path(sweep_dir) / "failures.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_failures(sweep_dir: Path, failures: dict[str, str]) -> None:
    atomic_write(Path(sweep_dir) / "failures.json", json.dumps(failures, indent=1, sort_keys=True) + "\n")


def n_key_frequencies(run: Run) -> int | None:
    """Number of key frequencies of the run's analysis; None when it has not been analysed."""
    if not run.has_analysis():
        return None
    try:
        return len(run.analysis.key_frequencies)
    except RunError:
        return None


def point_row(sweep_dir: Path, run_id: str, values: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    """One summary row: run_id, the varied values, then SUMMARY_COLUMNS (None where unknown).

    State is the run's own (``status.json``); a point without a run directory is ``failed`` with
    its recorded error, or ``pending`` when it has not run yet.
    """
    from groklab.summary import run_row

    row: dict[str, Any] = {"run_id": run_id, **values, **dict.fromkeys(SUMMARY_COLUMNS)}
    path = runs_dir(sweep_dir) / run_id
    if error is not None:
        row.update(state="failed", error=error)
    elif is_run_dir(path):
        run = Run(path)
        facts = run_row(run)
        row.update({k: facts.get(k) for k in SUMMARY_COLUMNS if k in facts})
        row["n_key_frequencies"] = n_key_frequencies(run)
        if row["state"] == "running" and not run.is_locked():
            row["state"] = "interrupted"  # its writer died; the next sweep run resumes it
    else:
        row["state"] = "pending"
    return row


def sweep_rows(sweep_dir: Path, points: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Summary rows for every point of a sweep directory (points default to ``sweep.yaml``'s)."""
    if points is None:
        _, points = read_sweep(sweep_dir)
    failures = read_failures(sweep_dir)
    return [
        point_row(sweep_dir, p["run_id"], p.get("values") or {}, p.get("error") or failures.get(p["run_id"]))
        for p in points
    ]


def summary_csv(rows: list[dict[str, Any]], varied: list[str]) -> str:
    """CSV text: run_id, every varied key, then SUMMARY_COLUMNS; empty cells for unknown values."""
    columns = ["run_id", *varied, *SUMMARY_COLUMNS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return v
