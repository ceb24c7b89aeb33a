"""Checkpoint contents and the schedules of saved weights.

A checkpoint holds model, optimizer, schedule, every RNG state and the step, all as tensors and
plain Python values so that ``torch.load(weights_only=True)`` reads it back. Restoring a checkpoint
and continuing gives the same weights and metrics, bit for bit on the same machine, as never
having stopped. Snapshots (:class:`SnapshotSchedule`) hold the weights only and exist for the
resolution of the progress measures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from groklab.runs import Run, RunError, load_checkpoint

__all__ = [
    "SNAPSHOT_ACC_BANDS",
    "SNAPSHOT_LOG_LOSS_CHANGE",
    "SnapshotSchedule",
    "capture_rng",
    "checkpoint_steps",
    "load_newest_valid",
    "restore_rng",
    "snapshot_steps",
]


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


SNAPSHOT_LOG_LOSS_CHANGE = 0.1  # |ln(loss) - ln(loss at the reference)| above this moves a metric
SNAPSHOT_ACC_BANDS = 10  # accuracy bands [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0), {1.0}
_LOSSES = ("train_loss", "test_loss")
_ACCS = ("train_acc", "test_acc")


class SnapshotSchedule:
    """Which steps get a weights-only snapshot (``snapshots/step_NNNNNNN.pt``): ``train.snapshot_every``.

    With ``every = N`` (None or 0: no snapshots at all), step s gets a snapshot when

    1. s is a multiple of N (step 0 included), or
    2. s is the run's last step (training completed, or stopped by a rule or callback), or
    3. s has an evaluation whose metrics moved since the *reference*: train or test loss changed
       by more than a factor e^0.1, about 10% (|ln loss - ln loss_ref| > ``SNAPSHOT_LOG_LOSS_CHANGE``),
       or train or test accuracy lies in another band of width 0.1 (floor(10 acc) differs; 1.0 is
       its own band). The reference is the evaluation of the latest snapshot taken at an
       evaluation step (step 0 at first).

    Rule 3 makes the snapshots dense where the metrics move (memorization, the grokking drop,
    cleanup), at the resolution of ``eval_every``, and leaves the quiet stretches to rule 1; a run
    gets at most one snapshot per evaluation plus those of rules 1 and 2. (On `nanda` test loss
    falls by 0.15-0.2 in ln per 100 steps through the grokking drop and by under 0.03 on the
    plateau before it, so 0.1 resolves the drop at every evaluation and adds nothing on the
    plateau.) A run
    interrupted (Ctrl-C) or failed writes no snapshot for that reason alone, so the snapshot steps
    are a function of the evaluation records: a resumed run rebuilds its state with
    :meth:`replay` and writes the same snapshots as a run that never stopped.
    """

    def __init__(self, every: int | None) -> None:
        self.every = every or None
        self.reference: Mapping[str, float] | None = None

    def due(self, step: int, metrics: Mapping[str, Any] | None, last: bool) -> bool:
        """Whether ``step`` gets a snapshot; ``metrics``: its evaluation record, None when it has
        none; ``last``: training ends at this step. Call once per step, in order."""
        if self.every is None:
            return False
        due = step % self.every == 0 or last or (metrics is not None and self.moved(metrics))
        if due and metrics is not None:
            self.reference = {k: float(metrics[k]) for k in (*_LOSSES, *_ACCS)}
        return due

    def moved(self, metrics: Mapping[str, Any]) -> bool:
        """Rule 3: whether ``metrics`` differ from the reference by a loss factor or an accuracy band."""
        ref = self.reference
        if ref is None:
            return True
        for k in _LOSSES:
            if not abs(_log(metrics[k]) - _log(ref[k])) <= SNAPSHOT_LOG_LOSS_CHANGE:  # NaN counts as moved
                return True
        return any(_band(metrics[k]) != _band(ref[k]) for k in _ACCS)

    @classmethod
    def replay(cls, every: int | None, records: Iterable[Mapping[str, Any]]) -> SnapshotSchedule:
        """The schedule's state after the evaluations ``records`` (ascending steps, none of them
        the last step): what a resumed run continues from."""
        schedule = cls(every)
        for r in records:
            schedule.due(int(r["step"]), r, last=False)
        return schedule


def _log(loss: float) -> float:
    return math.log(max(float(loss), 1e-300))


def _band(acc: float) -> int:
    return math.floor(SNAPSHOT_ACC_BANDS * float(acc))


def snapshot_steps(every: int | None, last_step: int, records: Iterable[Mapping[str, Any]]) -> list[int]:
    """Every step of a run ending at ``last_step`` with evaluation ``records`` that gets a snapshot."""
    by_step = {int(r["step"]): r for r in records}
    schedule = SnapshotSchedule(every)
    return [s for s in range(last_step + 1) if schedule.due(s, by_step.get(s), last=s == last_step)]


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
