"""The run directory (DESIGN section 5): layout, atomic writes, metrics log, status, checkpoints, lock.

Every write is atomic (temporary file in the same directory, then rename). ``metrics.jsonl`` is
append-only and readers skip a torn last line. A run being written holds an exclusive ``flock`` on
``.lock``; a second writer is refused, and a killed writer's lock dies with its process.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

__all__ = ["Run", "RunError", "RunLockedError", "atomic_write", "is_run_dir", "list_runs", "read_jsonl"]

STATES = ("running", "completed", "failed", "interrupted")
_UMASK = os.umask(0)
os.umask(_UMASK)
_CKPT = re.compile(r"^step_(\d{7,})\.pt$")


class RunError(ValueError):
    """A problem with a run directory the user can fix; the message is one line."""


class RunLockedError(RunError):
    pass


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename, so readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn (unparseable) last line is skipped, others are errors."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # torn by a writer that died mid-line
            raise RunError(f"{path}: line {i + 1} is not valid JSON") from None
    return out


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.yaml").is_file()


@dataclass
class Run:
    """A run directory. Paths are properties; writes go through these methods."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    config_path = property(lambda self: self.path / "config.yaml")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    split_path = property(lambda self: self.path / "split.npz")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
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

    def config_dict(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError:
            raise RunError(f"{self.config_path}: not valid YAML") from None
        if not isinstance(data, dict):
            raise RunError(f"{self.config_path}: not a config mapping")
        return data

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            with np.load(self.split_path) as z:
                return z["train"], z["test"]
        except (OSError, KeyError, ValueError) as e:
            raise RunError(f"{self.split_path}: unreadable ({e})") from None

    # -- status and metrics ------------------------------------------------------------------------
    def write_status(self, state: str, step: int, error: str | None = None, **extra: Any) -> None:
        assert state in STATES, state
        atomic_write(self.status_path, json.dumps({"state": state, "step": step, "error": error, **extra}) + "\n")

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {"state": "unknown", "step": None, "error": "status.json missing or unreadable"}

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def truncate_metrics(self, last_step: int) -> None:
        """Keep only records with step <= last_step (used when resuming from a checkpoint)."""
        kept = [r for r in self.metrics() if r["step"] <= last_step]
        atomic_write(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    # -- analysis ----------------------------------------------------------------------------------
    def write_analysis(
        self, summary: dict[str, Any], progress: list[dict[str, Any]], fourier: dict[str, Any],
        neurons: dict[str, Any], ablation: dict[str, Any],
    ) -> None:  # fmt: skip
        """Write ``analysis/`` (each file atomic; summary.json last, so its presence means complete)."""
        d = self.analysis_dir
        atomic_write(d / "progress.jsonl", "".join(json.dumps(r) + "\n" for r in progress))
        for name, obj in (("fourier", fourier), ("neurons", neurons), ("ablation", ablation), ("summary", summary)):
            atomic_write(d / f"{name}.json", json.dumps(obj, indent=1) + "\n")

    def analysis(self, name: str) -> Any:
        """A record of ``analysis/`` (``summary``, ``fourier``, ``neurons``, ``ablation``; ``progress``
        gives the list of progress.jsonl); RunError when missing or unreadable."""
        if name == "progress":
            path = self.analysis_dir / "progress.jsonl"
            if not path.exists():
                raise RunError(f"{path}: missing (run `groklab analyze {self.path}`)")
            return read_jsonl(path)
        path = self.analysis_dir / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RunError(f"{path}: missing (run `groklab analyze {self.path}`)") from None
        except json.JSONDecodeError:
            raise RunError(f"{path}: not valid JSON (run `groklab analyze {self.path}` again)") from None

    def has_analysis(self) -> bool:
        return (self.analysis_dir / "summary.json").is_file()

    # -- figures and report ------------------------------------------------------------------------
    figure_index_path = property(lambda self: self.figures_dir / "index.json")

    def write_figure(self, filename: str, render: Callable[[Path], None]) -> Path:
        """Write ``figures/FILENAME`` atomically: ``render(path)`` writes the file at a temporary
        path beside it, which is then renamed into place."""
        if Path(filename).name != filename or filename.startswith("."):
            raise ValueError(f"figure file name must be a plain name, got {filename!r}")
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / filename
        fd, tmp = tempfile.mkstemp(dir=self.figures_dir, prefix=f".{filename}.", suffix=Path(filename).suffix)
        os.close(fd)
        try:
            render(Path(tmp))
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

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
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def write_report(self, html: str) -> Path:
        atomic_write(self.report_path, html)
        return self.report_path

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoint_dir / f"step_{step:07d}.pt"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every step checkpoint, ascending by step."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [(int(m.group(1)), f) for f in self.checkpoint_dir.iterdir() if (m := _CKPT.match(f.name))]
        return sorted(found)

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

    # -- lock --------------------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the writer lock for the block; refuse if a live process holds it."""
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                raise RunLockedError(f"{self.path}: locked by another live process (pid {holder})") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)

    def is_locked(self) -> bool:
        path = self.path / ".lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


def check_new_run_path(path: Path) -> None:
    """Refuse to create a run where something is already: a file, a run, a non-empty directory."""
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path}: is a file, not a directory")
    if is_run_dir(path):
        raise RunError(f"--out {path}: already a run (use `groklab train --resume {path}` to continue it)")
    if path.is_dir() and any(path.iterdir()):
        raise RunError(f"--out {path}: directory is not empty and is not a run")


def list_runs(runs_dir: Path) -> list[Run]:
    """Every run directory directly under ``runs_dir`` (or nested one level, as in a sweep), sorted."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for child in sorted(runs_dir.iterdir()):
        if is_run_dir(child):
            found.append(Run(child))
        elif child.is_dir() and (child / "runs").is_dir():
            found.extend(Run(c) for c in sorted((child / "runs").iterdir()) if is_run_dir(c))
    return found
