"""Many seeds of one config in one figure: every seed's curves thin and light, the median bold."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from groklab.analysis.seeds import median_curve
from groklab.conventions import COLORS
from groklab.plots.dynamics import STEP_LABEL, Metrics, metric_series
from groklab.plots.style import log_axis, new_figure, note

__all__ = ["SEED_CURVES_CAPTION", "seed_curves"]

SEED_CURVES_CAPTION = (
    "Train and test accuracy (left) and test loss (right) of every seed, thin and light, against the "
    "training step (log scale). The bold lines are the medians across seeds at each evaluation step, "
    "taken over the seeds still running at that step (a seed that stopped early, e.g. after grokking, "
    "no longer counts, so late medians can rest on fewer, slower seeds)."
)

# (panel, metric key, colour name, label, positive values only for a log y axis)
_CURVES = (
    (0, "train_acc", "train", "train accuracy", False),
    (0, "test_acc", "test", "test accuracy", False),
    (1, "test_loss", "test", "test loss", True),
)


def seed_curves(metrics: Mapping[int, Metrics], title: str) -> Figure:
    """``metrics``: seed -> evaluation records of metrics.jsonl. The median lines carry the gid
    ``median <key>`` and the seeds' lines ``seed <seed> <key>``."""
    fig, axes = new_figure(title, 1, 2, size=(11.0, 4.3))
    acc, loss = axes[0]
    for panel, key, colour, label, positive in _CURVES:
        ax = axes[0, panel]
        for i, (seed, records) in enumerate(sorted(metrics.items())):
            xs, ys = metric_series(records, key, positive)
            ax.plot(xs, ys, color=COLORS[colour], lw=0.7, alpha=0.3, gid=f"seed {seed} {key}",
                    label=f"{label}, each seed" if i == 0 else None)  # fmt: skip
        curve = median_curve(metrics, key)
        steps, median = np.asarray(curve.steps, dtype=float), np.asarray(curve.median)
        keep = (steps > 0) & ((median > 0) if positive else True)
        ax.plot(steps[keep], median[keep], color=COLORS[colour], lw=2.4, gid=f"median {key}",
                label=f"{label}, median of {len(metrics)} seeds")  # fmt: skip
    for ax in (acc, loss):
        log_axis(ax, "x")
        ax.set_xlabel(STEP_LABEL)
        if not metrics:
            note(ax, "no member has evaluation records")
    acc.set_ylabel("accuracy (fraction correct)")
    acc.set_ylim(-0.02, 1.02)
    log_axis(loss, "y")
    loss.set_ylabel("cross-entropy loss (nats, log scale)")
    for ax in (acc, loss):
        ax.legend(loc="best", fontsize=8)
    return fig
