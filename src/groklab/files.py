"""File operations every writer and reader of a run directory shares, and the user's error type.

``atomic_write`` writes via a temporary file in the same directory, fsync, then rename, so a reader
never sees half a file; ``read_jsonl`` reads an append-only JSON-lines log whose last line may be
torn by a writer that died mid-line. ``load_weights`` reads one file of saved weights (a resumable
checkpoint, or a weights-only snapshot in torch or safetensors format).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "RunError",
    "RunLockedError",
    "load_checkpoint",
    "load_safetensors",
    "load_weights_file",
    "UMASK",
    "FileFormatError",
    "LockHeld",
    "atomic_render",
    "atomic_write",
    "exclusive_lock",
    "is_locked",
    "read_jsonl",
]

UMASK = os.umask(0)
os.umask(UMASK)


CHECKPOINT_KEYS = ("step", "model", "optimizer", "scheduler", "rng")


class RunError(ValueError):
    """A problem with a run directory the user can fix; the message is one line."""


class RunLockedError(RunError):
    pass


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one resumable checkpoint with ``weights_only=True``; a truncated or corrupt file is a RunError."""
    state = load_weights_file(path, map_location)
    if any(k not in state for k in CHECKPOINT_KEYS):
        raise RunError(f"{path}: not a groklab checkpoint")
    return state


def load_weights_file(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged zip or pickle
        raise RunError(f"{path}: corrupt or truncated checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise RunError(f"{path}: not a groklab checkpoint or snapshot")
    return state


def load_safetensors(path: Path, map_location: str | torch.device) -> dict[str, torch.Tensor]:
    """A weights-only snapshot in safetensors format (as release bundles hold): the model state dict."""
    from safetensors.torch import load_file

    try:
        return load_file(path, device=str(map_location))
    except Exception as e:  # safetensors raises its own error types for a damaged header or data
        raise RunError(f"{path}: corrupt or truncated safetensors snapshot ({type(e).__name__})") from None


class FileFormatError(ValueError):
    """A file that does not parse; the message is one line naming the file."""


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
        os.chmod(tmp, 0o666 & ~UMASK)
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
            raise FileFormatError(f"{path}: line {i + 1} is not valid JSON") from None
    return out


def atomic_render(path: Path, render: Callable[[Path], None]) -> Path:
    """Let ``render(tmp)`` write a temporary file beside ``path`` (same suffix), then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        render(Path(tmp))
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class LockHeld(Exception):
    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed, our pid written in it) for the
    block; LockHeld (with the holder's pid) when a live process holds it. A killed holder's lock
    dies with its process."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(os.pread(fd, 64, 0).decode(errors="replace").strip() or "?") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether a live process holds the lock file ``path``."""
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
