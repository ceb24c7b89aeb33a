"""Requests too large to attempt, refused up front with the size stated.

Two limits: a sweep of more than ``MAX_SWEEP_POINTS`` points (each point is a training run with its
own directory; a typo such as a grid over ``range(1000)`` twice is caught before anything is
written), and a task whose full-batch step and evaluation would need more memory than the machine
has (``task.p`` too large). The memory estimate is deliberately rough and on the low side, so a
refused task would certainly not have fit:

    bytes ~ n_pairs * (12 * p + 24 * (d_mlp + 4 * d_model))

per pair: the logits over p classes (float32, plus the float64 copy of the loss) and, for the
activations of one forward pass with its backward, about 24 bytes per hidden unit of the MLP and
the residual stream's four positions' worth of d_model.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from groklab.config import Config

__all__ = [
    "MAX_SWEEP_POINTS",
    "machine_memory_bytes",
    "task_memory_bytes",
    "ensemble_too_large",
    "task_too_large",
    "too_many_points",
]

MAX_SWEEP_POINTS = 10_000


def too_many_points(n_points: int) -> str | None:
    """Why a sweep of ``n_points`` points is refused, or None."""
    if n_points <= MAX_SWEEP_POINTS:
        return None
    return f"{n_points:,} points is more than the {MAX_SWEEP_POINTS:,} a sweep may have (split it into smaller sweeps)"


def task_memory_bytes(cfg: Config) -> int:
    """A low estimate of the memory one full-batch training step and evaluation of ``cfg`` need."""
    m, p = cfg.model, cfg.task.p
    hidden = max(m.d_mlp, *m.hidden) if m.arch == "mlp" else m.d_mlp
    n_pairs = (p - 1) ** 2  # every operation has at least these (without building the p^2 table)
    return n_pairs * (12 * p + 24 * (hidden + 4 * m.d_model))


def machine_memory_bytes() -> int:
    """Physical memory of this machine (bytes)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def task_too_large(cfg: Config, available: int | None = None) -> str | None:
    """Why ``cfg``'s task is refused (it cannot fit in ``available`` bytes, default this machine's
    memory), or None."""
    need, have = task_memory_bytes(cfg), available if available is not None else machine_memory_bytes()
    if need <= have:
        return None
    return (
        f"task.p: p={cfg.task.p} needs about {need / 1e9:,.1f} GB for one full-batch step "
        f"(about {cfg.task.p**2:,} pairs x {cfg.task.p} classes), more than this machine's {have / 1e9:,.1f} GB"
    )


def ensemble_too_large(cfg: Config, n_members: int, available: int | None = None) -> str | None:
    """Why an ensemble of ``n_members`` members of ``cfg`` is refused (their batched step would not
    fit in ``available`` bytes, default this machine's memory), or None."""
    one = task_memory_bytes(cfg)
    have = available if available is not None else machine_memory_bytes()
    if n_members * one <= have:
        return None
    return (
        f"--seeds: {n_members} members need about {n_members * one / 1e9:,.1f} GB for one batched step, "
        f"more than this machine's {have / 1e9:,.1f} GB (at most {max(have // one, 1)} fit; use fewer seeds)"
    )
