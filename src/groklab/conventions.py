"""Numbers and names every part of groklab shares: event thresholds, phase names and colours.

Defined once here; the trainer, the analysis, figures, report, dashboard and sweeps import them.
"""

from __future__ import annotations

__all__ = [
    "COLORS",
    "GROK_HOLD_ACC",
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
PHASE_LABELS = {"memorization": "memorization", "circuit_formation": "circuit formation", "cleanup": "cleanup"}
PHASE_COLORS = {"memorization": "#fde0c5", "circuit_formation": "#d8ecd0", "cleanup": "#dbe4f5"}

# Line colours with a meaning, the same in matplotlib and Plotly.
COLORS = {
    "train": "#1f77b4",
    "test": "#d62728",
    "key": "#d62728",  # key frequencies, and what removing or ablating them does
    "other": "#9aa5b1",  # non-key frequencies, random controls
    "neutral": "#7f7f7f",
    "intact": "#4c72b0",  # the model before an ablation (baseline)
}


def event_rule(name: str) -> str:
    """The one-line definition of an event, for axis labels, tables and tooltips."""
    rules = {
        "memorization_step": f"first evaluation with train accuracy >= {TRAIN_THRESHOLD}",
        "grokking_step": f"first evaluation with test accuracy >= {TEST_THRESHOLD}, held to the end",
        "delay": "grokking step - memorization step",
    }
    return rules[name]
