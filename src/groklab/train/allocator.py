"""Keep freed memory in the process between training steps (glibc's malloc on Linux only).

A full-batch step allocates and frees the same large tensors every time (activations and gradients
of a few MB each). glibc serves blocks above its mmap threshold (128 KiB at first, raised as such
blocks are freed, at most 32 MiB) with fresh ``mmap`` calls and returns the top of the heap to the
system once more than its trim threshold is free, so every step paid again for the kernel to map
and zero those pages (page faults: about a quarter of the folded path's step on a 2-core CPU).
:func:`tune_allocator` sets both thresholds high, once per process, so that the heap keeps what a
step freed for the next one. A process then holds on to its peak memory, which it reaches again
every step anyway. It applies to whatever the process runs, so ``groklab bench`` times both paths
under it. Elsewhere (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import platform
import sys

__all__ = ["tune_allocator"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>
MMAP_THRESHOLD = 32 * 1024**2  # the most glibc accepts on 64-bit (blocks above it are still mapped)
TRIM_THRESHOLD = 1024**3

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds (module docstring); True where they are set. Idempotent."""
    global _tuned
    if _tuned is None:
        _tuned = False
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            try:
                mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned
