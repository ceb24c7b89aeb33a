"""Checkpoint contents: model, optimizer, schedule, every RNG state and the step.

Everything is stored as tensors and plain Python values so that ``torch.load(weights_only=True)``
reads it back. Restoring a checkpoint and continuing gives the same weights and metrics, bit for
bit on the same machine, as never having stopped.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from groklab.runs import Run, RunError, load_checkpoint

__all__ = ["capture_rng", "checkpoint_steps", "load_newest_valid", "restore_rng"]


def checkpoint_steps(total: int, every: int) -> set[int]:
    """Steps that get a checkpoint: 0, a 1-2-5 log-spaced set below ``every``, multiples of
    ``every``, and the final step ``total``."""
    steps = {0, total}
    steps.update(range(every, total + 1, every))
    decade = 1
    while decade < every:
        steps.update(m * decade for m in (1, 2, 5) if m * decade < min(every, total))
        decade *= 10
    return steps


def capture_rng(generator: torch.Generator | None) -> dict[str, Any]:
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["sampler"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "sampler" in state:
        generator.set_state(state["sampler"])


def load_newest_valid(run: Run, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], list[str]]:
    """The newest checkpoint that loads, and a warning for each newer one that did not."""
    warnings: list[str] = []
    ckpts = run.checkpoints()
    if not ckpts:
        raise RunError(f"{run.path}: no checkpoint to resume from")
    for step, path in reversed(ckpts):
        try:
            state = load_checkpoint(path, map_location)
        except RunError as e:
            warnings.append(str(e))
            continue
        if warnings:
            warnings.append(f"falling back to the newest valid checkpoint, {path.name} (step {step})")
        return state, warnings
    raise RunError(f"{run.path}: no valid checkpoint ({len(ckpts)} found, all corrupt)")
