"""What the dashboard reads: run and sweep directories, cached on the files' signatures.

Everything goes through :mod:`groklab.runs` (and :func:`groklab.summary.run_row`); analysis
records come back typed (:mod:`groklab.records`), one file at a time, so the runs table reads only
each run's summary. Nothing here writes. A cache entry is keyed on the (mtime, size) of the files it read, so a run that is still
training, or a file rewritten by ``groklab analyze``, is read again on the next rerun and an
unchanged one is not. Errors are not cached: a half-written file is retried until it is whole.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from groklab.records import AblationReport, Progress, Summary
from groklab.runs import Run, RunError, list_runs
from groklab.summary import run_row

__all__ = [
    "RunRef",
    "SeedGroup",
    "Signature",
    "ablation",
    "discover",
    "file_sig",
    "metrics",
    "progress",
    "row",
    "run_sig",
    "seed_groups",
    "summary",
    "sweep_dirs",
    "sweep_table",
]

Signature = tuple[tuple[int, int] | None, ...]


@dataclass(frozen=True)
class RunRef:
    """A run as the dashboard names it: ``label`` is its path relative to the runs directory
    (``sweep_x/runs/<id>`` for a sweep's run), unique within one runs directory."""

    label: str
    path: Path

    @property
    def run(self) -> Run:
        return Run(self.path)


def file_sig(*paths: Path) -> Signature:
    """(mtime_ns, size) of each path, None for a missing one: the cache key of what was read."""
    out: list[tuple[int, int] | None] = []
    for p in paths:
        try:
            s = p.stat()
            out.append((s.st_mtime_ns, s.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def run_sig(run: Run) -> Signature:
    """Signature of the files behind a run's row: config, status, metrics and analysis summary."""
    return file_sig(run.config_path, run.status_path, run.metrics_path, run.analysis_dir / "summary.json")


def discover(runs_dir: Path) -> list[RunRef]:
    """Every run under ``runs_dir``: its own children and the runs of sweep directories in it."""
    refs = []
    for run in list_runs(runs_dir):
        try:
            label = str(run.path.relative_to(runs_dir))
        except ValueError:
            label = run.path.name
        refs.append(RunRef(label, run.path))
    return refs


def sweep_dirs(runs_dir: Path) -> list[Path]:
    """Sweep directories (holding ``sweep.yaml``): ``runs_dir`` itself and its children."""
    if not runs_dir.is_dir():
        return []
    found = [runs_dir] if (runs_dir / "sweep.yaml").is_file() else []
    return found + [c for c in sorted(runs_dir.iterdir()) if c.is_dir() and (c / "sweep.yaml").is_file()]


# -- cached readers ---------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=4096)
def _row(path: str, label: str, sig: Signature) -> dict[str, Any]:
    run = Run(Path(path))
    try:
        r = run_row(run)
    except Exception as e:  # a record of unexpected shape: the row says so, the table goes on
        r = {"name": run.path.name, "path": path, "state": "unreadable", "error": f"{type(e).__name__}: {e}"}
    r["run"] = label
    r["grokked"] = r.get("grokking_step") is not None
    r["key_frequencies"] = None
    r["analysed"] = False
    if run.has_analysis():
        try:
            r["key_frequencies"] = ", ".join(map(str, summary(run).key_frequencies)) or "none"
            r["analysed"] = True
        except RunError as e:
            r["analysis_error"] = str(e)
    return r


def row(ref: RunRef) -> dict[str, Any]:
    """The run's facts (:func:`groklab.summary.run_row`) plus run label, grokked, key frequencies,
    analysed; ``state`` is ``unreadable`` (with ``error``) for a run whose files cannot be read."""
    r = dict(_row(str(ref.path), ref.label, run_sig(ref.run)))
    if r.get("state") == "running" and not ref.run.is_locked():
        r["note"] = "status says running, but no process holds the run's lock: the writer has stopped"
    return r


@st.cache_data(show_spinner=False, max_entries=256)
def _metrics(path: str, sig: Signature) -> list[dict[str, Any]]:
    return Run(Path(path)).metric_records()


def metrics(run: Run) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (a torn last line skipped); RunError when unreadable."""
    return _metrics(str(run.path), file_sig(run.metrics_path))


@st.cache_data(show_spinner=False, max_entries=512)
def _record(path: str, name: str, sig: Signature) -> Any:
    return Run(Path(path)).typed_record(name)


def _read(run: Run, name: str) -> Any:
    """The typed record ``name`` of ``analysis/`` (a field of :class:`~groklab.records.Analysis`),
    read through :meth:`Run.read_record`, cached on its file; RunError when missing or unreadable."""
    filename = "progress.jsonl" if name == "progress" else f"{name}.json"
    return _record(str(run.path), name, file_sig(run.analysis_dir / filename))


def summary(run: Run) -> Summary:
    """``analysis/summary.json``: events, phases, key frequencies, criteria, ablation drops."""
    return typing.cast(Summary, _read(run, "summary"))


def progress(run: Run) -> list[Progress]:
    """``analysis/progress.jsonl``: the progress measures at every analysed step."""
    return typing.cast(list[Progress], _read(run, "progress"))


def ablation(run: Run) -> AblationReport:
    """``analysis/ablation.json``: every ablation of the analysed checkpoint."""
    return typing.cast(AblationReport, _read(run, "ablation"))


# -- seed groups ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedGroup:
    """Runs whose configs differ only in seed and split seed (:func:`groklab.analysis.seeds.seed_group_key`),
    e.g. the members ``DIR/seed_S`` of an ensemble; ``seeds[i]`` is the seed of ``members[i]``."""

    label: str
    members: tuple[RunRef, ...]
    seeds: tuple[int, ...]


@st.cache_data(show_spinner=False, max_entries=4096)
def _group_key(path: str, sig: Signature) -> tuple[str, int, int] | None:
    """(seed-group key, seed, split seed) of a run's config; None when it cannot be read."""
    from groklab.analysis.seeds import seed_group_key

    try:
        cfg = Run(Path(path)).config_dict()
    except RunError:
        return None
    task = cfg.get("task")
    seed, split = cfg.get("seed"), task.get("split_seed") if isinstance(task, dict) else None
    if not isinstance(seed, int) or not isinstance(split, int):  # config.yaml holds every key: damaged
        return None
    return seed_group_key(cfg), seed, split


def seed_groups(refs: list[RunRef]) -> list[SeedGroup]:
    """The seed groups among ``refs``: at least two runs, whose configs differ only in ``seed``,
    ``task.split_seed`` (and ``name``), each (seed, split seed) once (copies of one run are no
    group). Labelled by the members' common directory when that holds nothing else, else by the
    config name and the first member."""
    by_key: dict[str, list[tuple[int, int, RunRef]]] = {}
    for ref in refs:
        found = _group_key(str(ref.path), file_sig(ref.run.config_path))
        if found is not None:
            by_key.setdefault(found[0], []).append((found[1], found[2], ref))
    parents: dict[str, int] = {}
    for ref in refs:
        parents[str(Path(ref.label).parent)] = parents.get(str(Path(ref.label).parent), 0) + 1
    groups = []
    for members in by_key.values():
        if len(members) < 2 or len({(s, t) for s, t, _ in members}) < len(members):
            continue
        members.sort(key=lambda m: (m[0], m[1], m[2].label))
        refs_ = tuple(m[2] for m in members)
        seeds = tuple(m[0] for m in members)
        parent = {str(Path(r.label).parent) for r in refs_}
        (only,) = parent if len(parent) == 1 else ("",)
        seeds_text = ", ".join(map(str, seeds))
        if only not in ("", ".") and parents[only] == len(refs_):
            label = f"{only} (seeds {seeds_text})"
        else:
            label = f"{refs_[0].label} and {len(refs_) - 1} more (seeds {seeds_text})"
        groups.append(SeedGroup(label, refs_, seeds))
    return sorted(groups, key=lambda g: g.label)


# -- sweeps -----------------------------------------------------------------------------------------
def _sweep_sig(sweep_dir: Path) -> Signature:
    files = [sweep_dir / "sweep.yaml", sweep_dir / "summary.csv", sweep_dir / "failures.json"]
    runs = sweep_dir / "runs"
    if runs.is_dir():
        for d in sorted(runs.iterdir()):
            files += [d / "status.json", d / "metrics.jsonl", d / "analysis" / "summary.json"]
    return file_sig(*files)


@st.cache_data(show_spinner=False, max_entries=64)
def _sweep_table(path: str, sig: Signature) -> tuple[list[dict[str, Any]], list[str], str, str]:
    sweep_dir = Path(path)
    try:
        from groklab.sweeps import read_sweep, sweep_rows
    except ImportError:  # the sweeps package is optional here: fall back to the summary file
        return _summary_csv(sweep_dir)
    spec, points = read_sweep(sweep_dir)
    varied = [*(spec.get("grid") or {}), *(spec.get("zip") or {})]
    return sweep_rows(sweep_dir, points), varied, str(spec.get("name") or sweep_dir.name), "sweep directory"


def _summary_csv(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[str], str, str]:
    import pandas as pd

    path = sweep_dir / "summary.csv"
    if not path.is_file():
        raise RunError(f"{path}: missing (the sweep has not written its summary yet)")
    df = pd.read_csv(path)
    fixed = {"run_id", "state", "steps", "train_acc", "test_acc", "train_loss", "test_loss"}
    fixed |= {"memorization_step", "grokking_step", "delay", "n_key_frequencies", "error"}
    varied = [c for c in df.columns if c not in fixed]
    rows = df.astype(object).where(df.notna(), None).to_dict("records")
    return rows, varied, sweep_dir.name, "summary.csv"


def sweep_table(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[str], str, str]:
    """(one row per point, varied keys, sweep name, source) of a sweep directory, current with its
    runs (through :func:`groklab.sweeps.sweep_rows`); a ConfigError/RunError when unreadable."""
    return _sweep_table(str(sweep_dir), _sweep_sig(sweep_dir))
