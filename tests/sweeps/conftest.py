from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import TINY, groklab


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory) -> tuple[Path, object]:
    """The tiny spec run once, start to end, with the local executor (2 workers)."""
    out = tmp_path_factory.mktemp("sweeps") / "local"
    proc = groklab("sweep", TINY, "--out", out, "--workers", "2")
    return out, proc
