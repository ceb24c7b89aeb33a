from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Tiny models run fastest on one thread, and tests must not oversubscribe a small machine.
torch.set_num_threads(1)

GROKLAB = [sys.executable, "-m", "groklab"]


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run ``groklab ARGS`` in a subprocess (pipes, so no progress bar)."""
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*GROKLAB, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, **kw)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def test_output_dir() -> Path:
    """Artifacts a person may want to look at after the tests (screenshots, reports)."""
    path = Path(os.environ.get("GROKLAB_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))
    path.mkdir(parents=True, exist_ok=True)
    return path
