"""glibc's malloc keeps freed step memory once tune_allocator has run (Linux with glibc only)."""

import platform
import resource
import sys

import pytest
import torch

from groklab.train.allocator import tune_allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _faults_per_round(rounds: int = 10) -> float:
    """Minor page faults per allocation, fill and free of a 16 MiB tensor (4096 pages)."""
    torch.ones(4 * 1024**2).sum()  # the first round may map memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.ones(4 * 1024**2).sum()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc's malloc only")
def test_tuned_allocator_reuses_freed_memory_without_page_faults():
    assert tune_allocator() is True
    assert tune_allocator() is True  # once per process; calling again is harmless
    assert _faults_per_round() < 100  # untuned, every round maps and faults its 4096 pages again


@pytest.mark.skipif(GLIBC, reason="elsewhere it must do nothing")
def test_allocator_tuning_is_a_no_op_without_glibc():
    assert tune_allocator() is False
