"""The run directory (DESIGN section 5): layout, metrics log, status, checkpoints, snapshots, lock,
and reading it all back (``load_run``, the model at a step): the one reader of a run.

Every write is atomic (temporary file in the same directory, then rename). ``metrics.jsonl`` is
append-only and readers skip a torn last line. A run being written holds an exclusive ``flock`` on
``.lock``; a second writer is refused, and a killed writer's lock dies with its process.

Readers of a run being trained (``analyze``, ``figures``, ``report``, ``list``, the dashboard, the
Python API) read a *consistent prefix*: every file they open is complete (checkpoints, snapshots,
status and analysis files appear only by rename; a torn last metrics line is skipped), they see the
steps saved so far and never take the training lock, so the training run goes on undisturbed.
The analysis of such a run covers its saved steps so far and says so in its warnings; ``analysis/``
is written under its own lock (``analysis/.lock``), so a second ``analyze`` at the same moment is
kept from mixing two analyses' files: the second waits for the first to finish writing, and a
reader of ``Run.analysis`` takes the lock shared, so it reads one analysis, never parts of two. ``export`` refuses a run being trained.

An ensemble directory (DESIGN section 9) holds member runs ``seed_S`` and, once aggregated,
``aggregate.json``, ``figures/seed_curves.png`` and ``report.html``: :func:`seed_members`,
:func:`read_aggregate` and :func:`write_seed_files` are its reader and writer.

A write that fails (disk full) raises an OSError naming the file and leaves no half-written file
under a final name (see :mod:`groklab.files`).
"""

from __future__ import annotations

import bisect
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from groklab import files
from groklab.files import RunError, RunLockedError, atomic_write, load_checkpoint, read_jsonl

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from groklab.config import Config
    from groklab.data import Dataset
    from groklab.models import MLPModel, Transformer
    from groklab.records import Analysis

__all__ = [
    "Run",
    "RunError",
    "RunLockedError",
    "atomic_write",
    "is_run_dir",
    "list_runs",
    "load_checkpoint",
    "load_run",
    "read_aggregate",
    "read_jsonl",
    "seed_members",
    "write_seed_files",
]

STATES = ("running", "completed", "failed", "interrupted")
_STEP_FILE = re.compile(r"^step_(\d{7,})\.pt$")
_SNAPSHOT_FILE = re.compile(r"^step_(\d{7,})\.(?:pt|safetensors)$")  # safetensors: from a release bundle
ANALYSIS_LOCK_WAIT_S = 30.0  # a second writer of analysis/ waits this long for the first to finish writing
ANALYSIS_FILES = ("fourier", "neurons", "ablation", "summary")  # summary last: its presence means complete


def load_run(path: Path | str) -> Run:
    """Open a run directory, or verify and extract a release bundle file (:mod:`groklab.bundle`),
    for reading (the Python API's entry point, ``gl.load_run``)."""
    if Path(path).is_file():
        from groklab.bundle import open_bundle

        return open_bundle(path)
    return Run.open(Path(path))


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.yaml").is_file()


@dataclass(unsafe_hash=True)
class Run:
    """A run directory: the one reader and writer of its files (DESIGN sections 5 and 8).

    Reading: ``config`` (typed), ``metrics`` (a pandas DataFrame), ``split``, ``dataset``,
    ``steps`` (steps with saved weights), ``model(step)``, ``analysis`` (typed records),
    ``figure(name)``, ``to_hooked_transformer()``. Writing goes through the methods below, which
    the trainer and the command line call.
    """

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    config_path = property(lambda self: self.path / "config.yaml")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    split_path = property(lambda self: self.path / "split.npz")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    snapshot_dir = property(lambda self: self.path / "snapshots")
    analysis_dir = property(lambda self: self.path / "analysis")
    figures_dir = property(lambda self: self.path / "figures")
    report_path = property(lambda self: self.path / "report.html")

    # -- creation and opening -------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, config_yaml: str, train: np.ndarray, test: np.ndarray) -> Run:
        """Make a new run directory; refuse a file, a run, or a non-empty directory."""
        path = Path(path)
        check_new_run_path(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        buf = io.BytesIO()
        np.savez(buf, train=train, test=test)
        atomic_write(run.split_path, buf.getvalue())
        atomic_write(run.config_path, config_yaml)
        run.write_status("running", 0)
        return run

    @classmethod
    def open(cls, path: Path) -> Run:
        path = Path(path)
        if not path.exists():
            raise RunError(f"{path}: no such directory")
        if not is_run_dir(path):
            raise RunError(f"{path}: not a run directory (no config.yaml)")
        return cls(path)

    # -- the task and its split --------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            raise RunError(f"{self.config_path}: not valid YAML") from None
        except OSError as e:
            raise RunError(f"{self.config_path}: unreadable ({e.strerror})") from None
        if not isinstance(data, dict):
            raise RunError(f"{self.config_path}: not a config mapping")
        return data

    @cached_property
    def config(self) -> Config:
        """The resolved, typed config stored in ``config.yaml``."""
        from groklab.config import ConfigError, config_from_dict

        try:
            return config_from_dict(self.config_dict())
        except ConfigError as e:
            raise RunError(f"{self.config_path}: {e}") from None

    @property
    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) pair indices a*p + b, each sorted."""
        try:
            with np.load(self.split_path) as z:
                return z["train"], z["test"]
        except Exception as e:  # numpy raises many types for a damaged archive (BadZipFile, EOFError, ...)
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RunError(f"{self.split_path}: unreadable ({detail})") from None

    @cached_property
    def dataset(self) -> Dataset:
        """Every valid pair of the run's task (tokens, labels) in a-major order."""
        from groklab.data import make_dataset

        return make_dataset(self.config.task.op, self.config.task.p)

    # -- status and metrics ------------------------------------------------------------------------
    def write_status(self, state: str, step: int, error: str | None = None, **extra: Any) -> None:
        assert state in STATES, state
        atomic_write(self.status_path, json.dumps({"state": state, "step": step, "error": error, **extra}) + "\n")

    def status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.status_path.read_text())
        except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
            data = None
        if not isinstance(data, dict) or data.get("state") not in STATES:
            return {"state": "unknown", "step": None, "error": "status.json missing or unreadable"}
        return data

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one evaluation record; a failed write leaves the file as it was."""
        files.append_line(self.metrics_path, json.dumps(record) + "\n")

    def metric_records(self) -> list[dict[str, Any]]:
        """The evaluation records of ``metrics.jsonl`` (a torn last line skipped)."""
        try:
            records = read_jsonl(self.metrics_path)
        except files.FileFormatError as e:
            raise RunError(str(e)) from None
        for i, r in enumerate(records):
            if not isinstance(r, dict) or not isinstance(r.get("step"), int):
                raise RunError(f"{self.metrics_path}: record {i + 1} is not an evaluation record (no integer step)")
        return records

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per evaluation: step, train_loss, train_acc, test_loss, test_acc, lr, weight_norm, ..."""
        import pandas as pd

        return pd.DataFrame.from_records(self.metric_records())

    def truncate_metrics(self, last_step: int) -> None:
        """Keep only records with step <= last_step (used when resuming from a checkpoint)."""
        kept = [r for r in self.metric_records() if r["step"] <= last_step]
        atomic_write(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    # -- analysis ----------------------------------------------------------------------------------
    def write_analysis(self, analysis: Analysis) -> None:
        """Write ``analysis/`` under its lock, all files or none (a failure, such as a full disk,
        leaves the previous analysis whole; summary.json is renamed last, so its presence means
        complete). A NaN or infinite measure is written as null, and its place and reason go
        into ``summary.untrusted`` (also set on ``analysis``) and one line of ``summary.warnings``."""
        from groklab.records import finite_json, untrusted_warning

        d = self.analysis_dir
        d.mkdir(parents=True, exist_ok=True)
        parts, untrusted = {}, {}
        for name in ("progress", *ANALYSIS_FILES[:-1]):
            parts[name], flags = finite_json(getattr(analysis, name), name)
            untrusted.update(flags)
        extra = {}
        if analysis.lenses is not None:  # optional: analyses written before the lenses have none
            lenses, flags = finite_json(analysis.lenses, "lenses")
            untrusted.update(flags)
            extra[d / "lenses.json"] = json.dumps(lenses, indent=1) + "\n"
        summary = analysis.summary
        _, flags = finite_json(summary, "summary")
        summary.untrusted = {**untrusted, **flags}
        summary.warnings = [w for w in summary.warnings if not w.startswith("untrusted numbers:")]
        if summary.untrusted:
            summary.warnings.append(untrusted_warning(summary.untrusted))
        parts["summary"], _ = finite_json(summary, "summary")
        try:
            with files.exclusive_lock(d / ".lock", wait_s=ANALYSIS_LOCK_WAIT_S):
                files.atomic_write_many(
                    {
                        d / "progress.jsonl": "".join(json.dumps(r) + "\n" for r in parts["progress"]),
                        **extra,
                        **{d / f"{n}.json": json.dumps(parts[n], indent=1) + "\n" for n in ANALYSIS_FILES},
                    }
                )
        except files.LockHeld as e:
            raise RunLockedError(f"{d}: being written by another analysis (pid {e.holder}); try again") from None

    def read_record(self, name: str) -> Any:
        """The raw JSON of ``analysis/NAME.json`` (``progress``: the lines of progress.jsonl)."""
        missing = f"missing (run `groklab analyze {self.path}`)"
        if name == "progress":
            path = self.analysis_dir / "progress.jsonl"
            if not path.exists():
                raise RunError(f"{path}: {missing}")
            try:
                return read_jsonl(path)
            except files.FileFormatError as e:
                raise RunError(str(e)) from None
        path = self.analysis_dir / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RunError(f"{path}: {missing}") from None
        except ValueError:  # not JSON, or not UTF-8
            raise RunError(f"{path}: not valid JSON (run `groklab analyze {self.path}` again)") from None

    @property
    def analysis(self) -> Analysis:
        """The typed analysis records (``groklab analyze`` / ``gl.analyze`` write them); RunError when
        missing or unreadable. Read once per version of ``summary.json``."""
        from groklab.records import Analysis

        sig = _file_sig(self.analysis_dir / "summary.json")
        if getattr(self, "_analysis_sig", None) != sig or sig is None:
            try:
                with files.shared_lock(self.analysis_dir / ".lock"):
                    parts = {n: self.typed_record(n) for n in (*ANALYSIS_FILES, "progress")}
                    if (self.analysis_dir / "lenses.json").is_file():  # optional (newer lenses)
                        parts["lenses"] = self.typed_record("lenses")
                    sig = _file_sig(self.analysis_dir / "summary.json")
            except files.LockHeld:
                raise RunLockedError(f"{self.analysis_dir}: being written by an analysis; try again") from None
            self._analysis, self._analysis_sig = Analysis(**parts), sig
        return self._analysis

    def typed_record(self, name: str) -> Any:
        """One record of ``analysis/`` read into its type (a field of :class:`~groklab.records.Analysis`:
        ``summary``, ``progress``, ``fourier``, ``neurons``, ``ablation``); RunError when missing or unreadable."""
        from groklab.records import Analysis, RecordError, from_json

        try:
            return from_json(Analysis.field_type(name), self.read_record(name), name)
        except RecordError as e:
            raise RunError(f"{self.analysis_dir}: {e}") from None

    def has_analysis(self) -> bool:
        return (self.analysis_dir / "summary.json").is_file()

    # -- figures and report ------------------------------------------------------------------------
    figure_index_path = property(lambda self: self.figures_dir / "index.json")

    def write_figure(self, filename: str, render: Callable[[Path], None]) -> Path:
        """Write ``figures/FILENAME`` atomically: ``render(path)`` writes the file at a temporary
        path beside it, which is then renamed into place."""
        if Path(filename).name != filename or filename.startswith("."):
            raise ValueError(f"figure file name must be a plain name, got {filename!r}")
        return files.atomic_render(self.figures_dir / filename, render)

    def remove_figure(self, filename: str) -> None:
        """Delete ``figures/FILENAME`` if present (a figure an earlier drawing made that no longer applies)."""
        if Path(filename).name == filename:
            (self.figures_dir / filename).unlink(missing_ok=True)

    def write_figure_index(self, index: dict[str, Any]) -> None:
        """Write ``figures/index.json`` (what was drawn, what was skipped and why) atomically."""
        atomic_write(self.figure_index_path, json.dumps(index, indent=1) + "\n")

    def figure_index(self) -> dict[str, Any] | None:
        """``figures/index.json``, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.figure_index_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_report(self, html: str) -> Path:
        atomic_write(self.report_path, html)
        return self.report_path

    # -- weights: checkpoints (resumable) and snapshots (weights only) ---------------------------------
    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoint_dir / f"step_{step:07d}.pt"

    def snapshot_path(self, step: int) -> Path:
        return self.snapshot_dir / f"step_{step:07d}.pt"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every resumable step checkpoint, ascending by step."""
        return _step_files(self.checkpoint_dir)

    def checkpoint_steps(self) -> list[int]:
        return [s for s, _ in self.checkpoints()]

    def snapshots(self) -> list[tuple[int, Path]]:
        """(step, path) of every weights-only snapshot (.pt, or .safetensors from a bundle), ascending by step."""
        return _step_files(self.snapshot_dir, _SNAPSHOT_FILE)

    @property
    def steps(self) -> list[int]:
        """Steps with saved weights (checkpoints and snapshots), ascending; a step with both once."""
        return sorted({s for s, _ in self.checkpoints()} | {s for s, _ in self.snapshots()})

    def weights_path(self, step: int) -> Path:
        """The file holding the weights of ``step`` (a snapshot, .pt or .safetensors, else the
        checkpoint); RunError naming the nearest saved steps when there is none."""
        snapshot = self.snapshot_path(step)
        for path in (snapshot, snapshot.with_suffix(".safetensors"), self.checkpoint_path(step)):
            if path.is_file():
                return path
        steps = self.steps
        if not steps:
            raise RunError(f"{self.path}: no saved weights (no checkpoints or snapshots)")
        i = bisect.bisect_left(steps, step)
        near = sorted({steps[j] for j in (i - 1, i) if 0 <= j < len(steps)})
        raise RunError(f"{self.path}: no weights saved at step {step}; nearest saved steps: {near}")

    def load_state(self, step: int, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The model state dict at ``step`` (the one loader of weights); RunError when missing or corrupt."""
        path = self.weights_path(step)
        if path.suffix == ".safetensors":
            return files.load_safetensors(path, map_location)
        return files.load_weights_file(path, map_location)["model"]

    def states(
        self, steps: Iterable[int] | None = None, warn: Callable[[str], None] | None = None
    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(step, model state) for each of ``steps`` (default: every saved step) in order; a file
        that does not load is skipped, with a warning through ``warn``."""
        for step in self.steps if steps is None else steps:
            try:
                yield step, self.load_state(step)
            except RunError as e:
                if warn is None:
                    raise
                warn(f"skipped {e}")

    def build_model(self, device: str | torch.device = "cpu") -> Transformer | MLPModel:
        """A model of the run's architecture (weights of the default initialisation, eval mode)."""
        from groklab.models import build_model

        return build_model(self.config.model, self.config.task.p).to(device).eval()

    def model(self, step: int | None = None, device: str | torch.device = "cpu") -> Transformer | MLPModel:
        """The model holding the weights saved at ``step`` (default: the last saved step), in eval mode."""
        if step is None:
            if not self.steps:
                raise RunError(f"{self.path}: no saved weights (no checkpoints or snapshots)")
            step = self.steps[-1]
        model = self.build_model(device)
        try:
            model.load_state_dict(self.load_state(step, device))
        except (RuntimeError, KeyError) as e:
            raise RunError(
                f"{self.weights_path(step)}: weights do not fit the run's config ({str(e).splitlines()[0]})"
            ) from None
        return model

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``step_NNNNNNN.pt`` atomically and point ``latest.pt`` at it (a hard link)."""
        buf = io.BytesIO()
        torch.save(state, buf)
        path = self.checkpoint_path(step)
        atomic_write(path, buf.getvalue())
        tmp = self.checkpoint_dir / ".latest.pt.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:
            atomic_write(tmp, buf.getvalue())
        os.replace(tmp, self.checkpoint_dir / "latest.pt")
        return path

    def save_snapshot(self, step: int, model_state: dict[str, torch.Tensor]) -> Path:
        """Write the weights-only snapshot ``snapshots/step_NNNNNNN.pt`` atomically."""
        buf = io.BytesIO()
        torch.save({"step": step, "model": model_state}, buf)
        path = self.snapshot_path(step)
        atomic_write(path, buf.getvalue())
        return path

    def truncate_snapshots(self, last_step: int) -> None:
        """Delete the snapshots after ``last_step`` and temporary files a killed writer left (used
        when resuming from a checkpoint: the resumed run writes its own)."""
        for step, path in self.snapshots():
            if step > last_step:
                path.unlink(missing_ok=True)
        if self.snapshot_dir.is_dir():
            for tmp in self.snapshot_dir.glob(".step_*.tmp"):
                tmp.unlink(missing_ok=True)

    # -- notebook helpers ----------------------------------------------------------------------------
    def figure(self, name: str, step: int | None = None) -> Figure:
        """The registered figure ``name`` (matplotlib Figure) drawn from this run's analysis; with
        ``step``, the figures that show one checkpoint show that step instead of the analysed one."""
        from groklab.plots import draw_figure

        return draw_figure(self, name, step=step)

    def to_hooked_transformer(self, step: int | None = None) -> Any:
        """A TransformerLens HookedTransformer with this run's weights at ``step`` (extra ``tl``)."""
        from groklab.interop import to_hooked_transformer

        return to_hooked_transformer(self.model(step))

    # -- lock --------------------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the writer lock for the block; refuse if a live process holds it."""
        try:
            with files.exclusive_lock(self.path / ".lock"):
                yield
        except files.LockHeld as e:
            raise RunLockedError(f"{self.path}: locked by another live process (pid {e.holder})") from None

    def is_locked(self) -> bool:
        return files.is_locked(self.path / ".lock")


def check_new_run_path(path: Path) -> None:
    """Refuse to create a run where something is already: a file, a run, a non-empty directory."""
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path}: is a file, not a directory")
    if is_run_dir(path):
        raise RunError(f"--out {path}: already a run (use `groklab train --resume {path}` to continue it)")
    if path.is_dir() and any(path.iterdir()):
        raise RunError(f"--out {path}: directory is not empty and is not a run")


def _step_files(directory: Path, pattern: re.Pattern[str] = _STEP_FILE) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    return sorted((int(m.group(1)), f) for f in directory.iterdir() if (m := pattern.match(f.name)))


def _file_sig(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def default_run_dir(runs_dir: Path, cfg: Config, what: str | None = None) -> Path:
    """A new directory name under ``runs_dir``: ``<UTC time>__<name>__<what>``, ``what`` by default
    ``seed<seed>`` (an ensemble passes ``seeds<spec>``); ``-2``, ``-3``, ... when taken."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = runs_dir / f"{stamp}__{cfg.name}__{what or f'seed{cfg.seed}'}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


ENSEMBLE_FILE = "ensemble.json"  # DIR/ensemble.json: the members of `groklab train --seeds` (DESIGN section 9)


def member_name(seed: int) -> str:
    return f"seed_{seed}"


def is_ensemble_dir(path: Path) -> bool:
    return (Path(path) / ENSEMBLE_FILE).is_file()


def create_ensemble_dir(path: Path, seeds: list[int], config_name: str) -> list[Path]:
    """Make the ensemble directory (refused where something already is, as for a run) with its
    index ``ensemble.json``; returns the members' run directories (``seed_S``, not yet created)."""
    path = Path(path)
    if is_ensemble_dir(path):
        raise RunError(f"--out {path}: already an ensemble (use `groklab train --resume {path}` to continue it)")
    check_new_run_path(path)
    path.mkdir(parents=True, exist_ok=True)
    index = {"kind": "ensemble", "config": config_name, "seeds": seeds, "members": [member_name(s) for s in seeds]}
    atomic_write(path / ENSEMBLE_FILE, json.dumps(index, indent=1) + "\n")
    return [path / member_name(s) for s in seeds]


def ensemble_members(path: Path) -> list[Path]:
    """The members' run directories of an ensemble directory, in the order of its seeds."""
    where = Path(path) / ENSEMBLE_FILE
    try:
        index = json.loads(where.read_text())
        names = index["members"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and "/" not in n for n in names):
            raise ValueError("members is not a list of directory names")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{where}: not a readable ensemble index ({files.describe_error(e)})") from None
    return [Path(path) / n for n in names]


def list_runs(runs_dir: Path) -> list[Run]:
    """Every run directory directly under ``runs_dir`` (or nested one level: a sweep's ``runs/``,
    an ensemble's ``seed_S``), sorted."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for child in sorted(runs_dir.iterdir()):
        if is_run_dir(child):
            found.append(Run(child))
        elif child.is_dir() and (child / "runs").is_dir():
            found.extend(Run(c) for c in sorted((child / "runs").iterdir()) if is_run_dir(c))
        elif child.is_dir():
            found.extend(seed_members(child))
    return found


# ---------------------------------------------------------------- an ensemble directory (DESIGN section 9)

_SEED_DIR = re.compile(r"^seed_(\d+)$")
AGGREGATE_FILE = "aggregate.json"  # the files write_seed_files writes beside the members
SEED_FIGURE = "figures/seed_curves.png"
SEED_REPORT = "report.html"


def seed_members(path: Path) -> list[Run]:
    """The member runs ``path/seed_S`` of an ensemble directory, by seed (none for another directory)."""
    try:
        children = list(Path(path).iterdir()) if Path(path).is_dir() else []
    except OSError:  # unreadable: not an ensemble we can list
        return []
    found = [(int(m.group(1)), c) for c in children if (m := _SEED_DIR.match(c.name)) and is_run_dir(c)]
    return [Run(c) for _, c in sorted(found)]


def write_seed_files(out_dir: Path, aggregate: Any, png: bytes, html: str) -> Path:
    """Write an ensemble's ``aggregate.json`` (a :class:`~groklab.records.SeedAggregate`; a NaN or
    infinite number becomes null), ``figures/seed_curves.png`` and ``report.html``, each
    atomically, the page last; returns the page's path."""
    from groklab.records import finite_json

    data, _ = finite_json(aggregate, "aggregate")
    atomic_write(Path(out_dir) / SEED_FIGURE, png)
    atomic_write(Path(out_dir) / AGGREGATE_FILE, json.dumps(data, indent=1) + "\n")
    atomic_write(Path(out_dir) / SEED_REPORT, html)
    return Path(out_dir) / SEED_REPORT


def read_aggregate(path: Path | str) -> Any:
    """The :class:`~groklab.records.SeedAggregate` of an ensemble directory (or of its
    ``aggregate.json``); RunError when missing or unreadable."""
    from groklab.records import RecordError, SeedAggregate, from_json

    path = Path(path)
    file = path / AGGREGATE_FILE if path.is_dir() else path
    try:
        return from_json(SeedAggregate, json.loads(file.read_text()), "aggregate")
    except FileNotFoundError:
        raise RunError(f"{file}: missing (run `groklab reproduce --seeds ...` to write it)") from None
    except ValueError as e:  # not JSON, not UTF-8, or a RecordError
        detail = str(e) if isinstance(e, RecordError) else "not valid JSON"
        raise RunError(f"{file}: {detail}") from None
