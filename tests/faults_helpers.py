"""A full disk on demand: every byte groklab writes passes through ``groklab.files._write``, which
these helpers replace (the same code path as a real ENOSPC from write(2)). ``FullDisk`` starts with
room for everything; once a write to a file whose name contains ``fill_at`` begins, only ``free``
bytes remain: a write larger than that puts part of its bytes down and then fails with ENOSPC (as
the kernel does), a smaller one succeeds and uses its bytes up."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def target_of(f) -> str:
    """The path an open file object writes to (``os.fdopen`` objects only know their descriptor)."""
    name = f.name
    return os.readlink(f"/proc/self/fd/{name}") if isinstance(name, int) else str(name)


class FullDisk:
    def __init__(self, fill_at: str, free: int = 0, once: bool = False) -> None:
        """``fill_at``: part of the path of the write that finds the disk full; ``once``: space
        comes back right after the first failed write (someone deleted files)."""
        self.fill_at, self.free, self.once, self.full = fill_at, free, once, False
        self.faults = 0  # ENOSPC errors raised
        self.failed: list[str] = []  # the files whose write failed

    def write(self, f, raw: bytes) -> None:
        target = target_of(f)
        self.full = self.full or self.fill_at in target
        if not self.full or len(raw) <= self.free:
            self.free -= len(raw) if self.full else 0
            f.write(raw)
            return
        f.write(raw[: max(self.free, len(raw) // 2)])  # part of it lands, then the disk is full
        self.faults += 1
        self.failed.append(target)
        self.full = self.full and not self.once
        self.fill_at = self.fill_at if not self.once else "\0"  # never matches again
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def leftovers(root: Path) -> list[Path]:
    """Temporary files (``.NAME.XXXX.tmp`` and the like) anywhere under ``root``."""
    return sorted(p for p in Path(root).rglob(".*") if p.is_file() and p.name not in (".lock",))
