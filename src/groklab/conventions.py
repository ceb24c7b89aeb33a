"""Numbers and names every part of groklab shares: event thresholds, phase names and colours.

Defined once here; the trainer, the analysis, figures, report, dashboard and sweeps import them.
"""

from __future__ import annotations

__all__ = [
    "CLEANUP_CONFIRM_RECORDS",
    "CLEANUP_LOSS_TOL",
    "COLORS",
    "GINI_PLATEAU_TOL",
    "GROK_HOLD_ACC",
    "ONSET_DROP",
    "PHASES",
    "PHASE_COLORS",
    "PHASE_LABELS",
    "TEST_THRESHOLD",
    "TRAIN_THRESHOLD",
    "event_rule",
]

TRAIN_THRESHOLD = 0.99  # memorization step: first evaluation with train accuracy >= this
TEST_THRESHOLD = 0.95  # grokking step: first evaluation with test accuracy >= this, held to the end
GROK_HOLD_ACC = 0.99  # train.stop_after_grok counts the steps test accuracy has held at >= this

PHASES = ("memorization", "circuit_formation", "cleanup")  # Nanda et al. 2023, section 5
# The phase rules (groklab.analysis.phases) and their tolerances:
ONSET_DROP = (
    1.0  # circuit formation ends where ln(test loss) is this far (nats: a factor e) below its post-memorization peak
)
CLEANUP_LOSS_TOL = 0.01  # nats: test loss is "near" restricted loss (test split) when they differ by at most this
GINI_PLATEAU_TOL = (
    0.1  # W_L Gini "on its plateau": within this fraction of its rise (first record -> last) of its last value
)
CLEANUP_CONFIRM_RECORDS = 1  # later progress records at which the cleanup condition must still hold
PHASE_LABELS = {"memorization": "memorization", "circuit_formation": "circuit formation", "cleanup": "cleanup"}
PHASE_COLORS = {"memorization": "#fde0c5", "circuit_formation": "#d8ecd0", "cleanup": "#dbe4f5"}

# Line colours with a meaning, the same in matplotlib and Plotly.
COLORS = {"train": "#1f77b4", "test": "#d62728", "key": "#d62728", "other": "#9aa5b1", "neutral": "#7f7f7f"}


def event_rule(name: str) -> str:
    """The one-line definition of an event, for axis labels, tables and tooltips."""
    rules = {
        "memorization_step": f"first evaluation with train accuracy >= {TRAIN_THRESHOLD}",
        "grokking_step": f"first evaluation with test accuracy >= {TEST_THRESHOLD}, held to the end",
        "delay": "grokking step - memorization step",
    }
    return rules[name]
