"""The online stopping rule of ``groklab reproduce``: train through cleanup, then stop.

Nanda et al. (2023, section 5) describe cleanup as weight decay removing the memorizing components
once the generalizing circuit has formed: test loss falls far faster than train loss (the gap
between them closes) and the weight norm falls. Cleanup is over when both have stopped. The rule
reads the evaluation records only (no key frequencies), so it runs inside training:

    s_h = the step from which test accuracy has been >= ``hold_acc`` (0.99) at every evaluation;
    W   = max(``window_evals`` (5) evaluation intervals, ``window_frac`` (0.25) * s_h) steps.
    The run is *settled* at an evaluation t >= s_h + W when, over the evaluations in [t - W, t],
      - the log-loss gap g = ln(test_loss) - ln(train_loss) has fallen by at most ``gap_tol``
        (0.1 nats) from its largest value: test loss no longer falls faster than train loss, and
      - the weight norm has fallen by at most ``norm_tol`` (1%) from its largest value: weight
        decay no longer shrinks the model.
    Training stops at the first evaluation at which the run has been settled at every evaluation
    for W steps (since the evaluation t_1 where it first settled). :class:`CleanupStop` saves a
    checkpoint at t_1, so the analysis has weights where cleanup was first seen to be over and at
    the stop, however sparse the regular checkpoints are.

Why not "test and train loss have stopped falling": after cleanup both keep falling exponentially
while the logit scale grows (quick preset, seed 0: test loss 3e-4 at step 1000, 3e-6 at 1500,
with the gap and the weight norm flat), so such a rule would always run to the budget. The window
grows with s_h, so slow runs are judged over proportionally long stretches; the confirmation
stretch keeps a pause inside the fall (a flat stretch before the last test pairs are learnt) from
ending the run. The training budget (``train.steps``) caps the run. Measured in the module's tests
and the README: the rule stops after the offline ``cleanup_end`` of :mod:`groklab.analysis.phases`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from groklab.conventions import GROK_HOLD_ACC
from groklab.train.loop import Callback, EvalResult, Trainer

__all__ = ["CleanupRule", "CleanupStop", "Settled", "cleanup_stop_step"]


@dataclass(frozen=True)
class Settled:
    """The run is settled at the last record: the window and what moved in it."""

    held_since: int  # s_h
    width: float  # W, steps
    gap_fall: float  # nats
    norm_fall: float  # relative


@dataclass(frozen=True)
class CleanupRule:
    """The rule of this module's docstring; the defaults are the documented values."""

    hold_acc: float = GROK_HOLD_ACC
    window_evals: int = 5
    window_frac: float = 0.25
    gap_tol: float = 0.1  # nats
    norm_tol: float = 0.01  # relative

    def settled(self, records: Sequence[Mapping[str, Any]]) -> Settled | None:
        """Whether the run is settled at the last of ``records`` (evaluation records in step order,
        keys step, test_acc, train_loss, test_loss, weight_norm, as in ``metrics.jsonl``)."""
        i = len(records)
        while i > 0 and records[i - 1]["test_acc"] >= self.hold_acc:
            i -= 1
        if i == len(records) or len(records) < 2:
            return None
        held, last = records[i]["step"], records[-1]
        t = last["step"]
        width = max(self.window_evals * (t - records[-2]["step"]), self.window_frac * held)
        if t < held + width:
            return None
        window = [r for r in records[i:] if r["step"] >= t - width]
        gap_fall = max(_gap(r) for r in window) - _gap(last)
        norm_fall = max(r["weight_norm"] for r in window) / last["weight_norm"] - 1
        if gap_fall > self.gap_tol or norm_fall > self.norm_tol:
            return None
        return Settled(held, width, max(gap_fall, 0.0), max(norm_fall, 0.0))


def _gap(r: Mapping[str, Any]) -> float:
    return math.log(max(r["test_loss"], 1e-300)) - math.log(max(r["train_loss"], 1e-300))


class _Watch:
    """The rule over a growing list of records: when the run first settles, and when to stop."""

    def __init__(self, rule: CleanupRule) -> None:
        self.rule = rule
        self.since: int | None = None  # t_1: the first evaluation of the current settled stretch

    def see(self, records: Sequence[Mapping[str, Any]]) -> tuple[bool, str | None]:
        """(settled first at this record, the reason to stop here or None)."""
        found, t = self.rule.settled(records), records[-1]["step"]
        if found is None:
            self.since = None
            return False, None
        first = self.since is None
        self.since = t if self.since is None else self.since
        if t - self.since < found.width:
            return first, None
        return first, (
            f"cleanup over: test accuracy >= {self.rule.hold_acc} since step {found.held_since}; settled since "
            f"step {self.since} (window {found.width:g} steps: ln(test/train loss) fell {found.gap_fall:.3g} "
            f"nats <= {self.rule.gap_tol:g}, weight norm {found.norm_fall:.2%} <= {self.rule.norm_tol:.0%})"
        )


def cleanup_stop_step(records: Sequence[Mapping[str, Any]], rule: CleanupRule | None = None) -> int | None:
    """The step at which ``rule`` (default: the documented one) stops training, replaying the
    evaluation ``records`` in step order; None when it never does."""
    ordered = sorted(records, key=lambda r: r["step"])
    watch = _Watch(rule or CleanupRule())
    return next((ordered[n - 1]["step"] for n in range(1, len(ordered) + 1) if watch.see(ordered[:n])[1]), None)


class CleanupStop(Callback):
    """Stops the trainer where :func:`cleanup_stop_step` would, and saves a checkpoint where the run
    first settles. ``reason`` and ``step`` say why and where it stopped (None before). On a resumed
    run the earlier evaluations are read back from ``metrics.jsonl``."""

    def __init__(self, rule: CleanupRule | None = None) -> None:
        self.rule = rule or CleanupRule()
        self.watch = _Watch(self.rule)
        self.records: list[dict[str, Any]] | None = None
        self.reason: str | None = None
        self.step: int | None = None
        self.settled_at: int | None = None

    def on_eval(self, trainer: Trainer, result: EvalResult) -> bool:
        if self.records is None:
            self.records = [r for r in trainer.run_dir.metric_records() if r["step"] < result.step]
            for n in range(1, len(self.records) + 1):
                self.watch.see(self.records[:n])
        self.records.append(result.to_record())
        first, self.reason = self.watch.see(self.records)
        self.settled_at = self.watch.since
        if first and not self.reason:
            trainer.save()  # weights where cleanup is first seen to be over
        self.step = result.step if self.reason else None
        return self.reason is not None
