"""File operations every writer and reader of a run directory shares, and the user's error type.

``atomic_write`` writes via a temporary file in the same directory, fsync, then rename, so a reader
never sees half a file; ``read_jsonl`` reads an append-only JSON-lines log whose last line may be
torn by a writer that died mid-line. ``load_weights`` reads one file of saved weights (a resumable
checkpoint, or a weights-only snapshot in torch or safetensors format).

A write the file system refuses (disk full, quota, read-only) leaves nothing behind under the final
name: ``atomic_write`` removes its temporary file, ``append_line`` cuts the file back to where it was,
and the OSError raised names the final path (not the temporary one) so the message a user reads says
which file could not be written. Every byte either writes passes through :func:`_write`, the one
place a test injects a full disk.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = [
    "FAILURE_ERRNOS",
    "RunError",
    "RunLockedError",
    "append_line",
    "describe_error",
    "load_checkpoint",
    "load_safetensors",
    "load_weights_file",
    "UMASK",
    "FileFormatError",
    "LockHeld",
    "atomic_render",
    "atomic_write",
    "atomic_write_many",
    "exclusive_lock",
    "is_locked",
    "read_jsonl",
    "shared_lock",
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


# Errors of the machine rather than of the input: a command that meets one exits 1, not 2.
FAILURE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS, errno.ENOMEM})


def _write(f: BinaryIO, raw: bytes) -> None:
    """Write all of ``raw`` to the unbuffered ``f`` (every byte of ``atomic_write`` and
    ``append_line`` goes here)."""
    view = memoryview(raw)
    while view:
        view = view[f.write(view) or 0 :]


def _naming(e: OSError, path: Path) -> OSError:
    """``e`` again, naming ``path`` (the file the caller meant to write) instead of a temporary file."""
    return OSError(e.errno, e.strerror or str(e), str(path))


def describe_error(e: BaseException) -> str:
    """One line saying what went wrong: for an OSError its cause and the file (``No space left on
    device: cannot write runs/x/checkpoints/step_0000100.pt``), else the exception's first line."""
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    if isinstance(e, MemoryError):
        return "out of memory"
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename, so readers never see half.
    On failure (an OSError naming ``path``) the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _naming(e, path) from None
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            _write(f, raw)
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_many(contents: dict[Path, bytes | str]) -> None:
    """Write several files so that a failure changes none of them: every temporary file is written
    and synced first (a full disk shows here, and they are all removed), then each is renamed into
    place in the order given."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in contents.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = data.encode() if isinstance(data, str) else data
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                staged.append((tmp, path))
                with os.fdopen(fd, "wb", buffering=0) as f:
                    _write(f, raw)
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o666 & ~UMASK)
            except OSError as e:
                raise _naming(e, path) from None
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def append_line(path: Path, line: str) -> None:
    """Append one line (``line`` ends with a newline) to ``path``; when the write fails (an OSError
    naming ``path``) the file is cut back to its previous length, so no torn line stays behind."""
    with open(path, "ab", buffering=0) as f:
        start = f.tell()
        try:
            _write(f, line.encode())
        except OSError as e:
            try:
                f.truncate(start)
            except OSError:
                pass  # readers skip a torn last line; a resume rewrites the file
            raise _naming(e, path) from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn (unparseable) last line is skipped, others are errors."""
    if not path.exists():
        return []
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not UTF-8 text") from None
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
def exclusive_lock(path: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed, our pid written in it) for the
    block; LockHeld (with the holder's pid) when a live process still holds it after ``wait_s``
    seconds. A killed holder's lock dies with its process."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock(fd, fcntl.LOCK_EX, wait_s, lambda: os.pread(fd, 64, 0).decode(errors="replace").strip() or "?")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def shared_lock(path: Path, wait_s: float = 10.0) -> Iterator[None]:
    """Hold a shared ``flock`` on the lock file ``path`` for the block, so that no exclusive holder
    writes meanwhile; nothing to hold when ``path`` does not exist or cannot be opened (a read-only
    copy). LockHeld when a writer still holds it after ``wait_s`` seconds."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        _flock(fd, fcntl.LOCK_SH, wait_s, lambda: "?")
        yield
    finally:
        os.close(fd)


def _flock(fd: int, kind: int, wait_s: float, holder: Callable[[], str]) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockHeld(holder()) from None
            time.sleep(0.05)


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
