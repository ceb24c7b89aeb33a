"""The online stopping rule of ``groklab reproduce``: train through cleanup, then stop.

Nanda et al. (2023, section 5) describe cleanup as weight decay removing the memorizing components
once the generalizing circuit has formed: test loss falls far faster than train loss (the gap
between them closes) and the weight norm falls. Cleanup is over when both have stopped. The rule
reads the evaluation records only (no key frequencies, nothing saved), so it runs inside training:

    s_h = the step from which test accuracy has been >= ``hold_acc`` (0.99) at every evaluation;
    W   = max(``window_evals`` (5) evaluation intervals, ``window_frac`` (0.25) * s_h) steps;
    stop at the first evaluation t >= s_h + W at which, over the evaluations in [t - W, t],
      - the log-loss gap g = ln(test_loss) - ln(train_loss) has fallen by at most ``gap_tol``
        (0.1 nats) from its largest value: test loss no longer falls faster than train loss, and
      - the weight norm has fallen by at most ``norm_tol`` (1%) from its largest value: weight
        decay no longer shrinks the model.

Why not "test and train loss have stopped falling": after cleanup both keep falling exponentially
while the logit scale grows (quick preset, seed 0: test loss 3e-4 at step 1000, 3e-6 at 1500,
with the gap and the weight norm flat), so such a rule would always run to the budget. The window
grows with s_h, so slow runs are judged over proportionally long stretches. On the runs measured
(debug p = 17 and quick seeds 0-2) the rule stopped 150-350 steps after the offline
``cleanup_end`` of the full-length run (:mod:`groklab.analysis.phases`), or not at all within 1500
steps where the weight norm was still falling. The training budget (``train.steps``) caps the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from groklab.conventions import GROK_HOLD_ACC
from groklab.train.loop import Callback, EvalResult, Trainer

__all__ = ["CleanupRule", "CleanupStop", "cleanup_stop_step"]


@dataclass(frozen=True)
class CleanupRule:
    """The rule of this module's docstring; the defaults are the documented values."""

    hold_acc: float = GROK_HOLD_ACC
    window_evals: int = 5
    window_frac: float = 0.25
    gap_tol: float = 0.1  # nats
    norm_tol: float = 0.01  # relative

    def check(self, records: Sequence[Mapping[str, Any]]) -> str | None:
        """None while training should go on; once the rule stops at the last record, the reason.
        ``records``: evaluation records in step order (keys step, test_acc, train_loss, test_loss,
        weight_norm), as in ``metrics.jsonl``."""
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
        return (
            f"cleanup over: test accuracy >= {self.hold_acc} since step {held}; over the last {width:g} steps "
            f"ln(test/train loss) fell {max(gap_fall, 0):.3g} nats (<= {self.gap_tol:g}) and the weight norm "
            f"{max(norm_fall, 0):.2%} (<= {self.norm_tol:.0%})"
        )


def _gap(r: Mapping[str, Any]) -> float:
    return math.log(max(r["test_loss"], 1e-300)) - math.log(max(r["train_loss"], 1e-300))


def cleanup_stop_step(records: Sequence[Mapping[str, Any]], rule: CleanupRule | None = None) -> int | None:
    """The step at which ``rule`` (default: the documented one) stops training, replaying the
    evaluation ``records`` in step order; None when it never does."""
    rule = rule or CleanupRule()
    ordered = sorted(records, key=lambda r: r["step"])
    return next((ordered[n - 1]["step"] for n in range(1, len(ordered) + 1) if rule.check(ordered[:n])), None)


class CleanupStop(Callback):
    """Stops the trainer once :class:`CleanupRule` fires; ``reason`` then says why (None before).
    On a resumed run the earlier evaluations are read back from ``metrics.jsonl``."""

    def __init__(self, rule: CleanupRule | None = None) -> None:
        self.rule = rule or CleanupRule()
        self.records: list[dict[str, Any]] | None = None
        self.reason: str | None = None
        self.step: int | None = None

    def on_eval(self, trainer: Trainer, result: EvalResult) -> bool:
        if self.records is None:
            self.records = [r for r in trainer.run_dir.metric_records() if r["step"] < result.step]
        self.records.append(result.to_record())
        self.reason = self.rule.check(self.records)
        self.step = result.step if self.reason else None
        return self.reason is not None
