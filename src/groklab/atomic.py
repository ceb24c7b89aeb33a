"""Low-level file operations every writer and reader of a run directory shares.

``atomic_write`` writes via a temporary file in the same directory, fsync, then rename, so a reader
never sees half a file; ``read_jsonl`` reads an append-only JSON-lines log whose last line may be
torn by a writer that died mid-line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["FileFormatError", "atomic_write", "read_jsonl", "UMASK"]

UMASK = os.umask(0)
os.umask(UMASK)


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
