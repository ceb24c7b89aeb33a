"""The seed-curves figure on hand-made metrics whose median curves are known."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from groklab.conventions import COLORS
from groklab.plots.seeds import seed_curves


def records(steps, test_acc, test_loss):
    return [
        {"step": s, "train_acc": 1.0 if s >= 20 else 0.5, "test_acc": a, "test_loss": ell}
        for s, a, ell in zip(steps, test_acc, test_loss, strict=True)
    ]


METRICS = {
    0: records([0, 10, 20, 30], [0.0, 0.1, 0.5, 1.0], [4.0, 3.0, 2.0, 0.1]),
    1: records([0, 10, 20, 30], [0.1, 0.3, 0.7, 0.9], [4.0, 2.0, 1.0, 0.2]),
    2: records([0, 10, 20], [0.2, 0.2, 0.9], [5.0, 1.0, 0.5]),  # stopped at step 20
}


def line(fig, gid):
    (found,) = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == gid]
    return found


def test_median_lines_equal_the_known_median_curves():
    fig = seed_curves(METRICS, "quick: 3 seeds")
    assert isinstance(fig, Figure)
    test = line(fig, "median test_acc")
    # step 0 is left off the log axis; step 30 is the median of the two seeds still running
    assert list(test.get_xdata()) == [10, 20, 30]
    np.testing.assert_allclose(test.get_ydata(), [0.2, 0.7, 0.95])
    loss = line(fig, "median test_loss")
    np.testing.assert_allclose(loss.get_ydata(), [2.0, 1.0, 0.15])
    np.testing.assert_allclose(line(fig, "median train_acc").get_ydata(), [0.5, 1.0, 1.0])
    assert test.get_linewidth() > line(fig, "seed 2 test_acc").get_linewidth()
    assert test.get_color() == COLORS["test"] and line(fig, "median train_acc").get_color() == COLORS["train"]
    np.testing.assert_allclose(line(fig, "seed 2 test_acc").get_ydata(), [0.2, 0.9])
    acc_ax, loss_ax = fig.axes
    assert acc_ax.get_xscale() == "log" and loss_ax.get_yscale() == "log"
    assert "median of 3 seeds" in " ".join(t.get_text() for t in acc_ax.get_legend().get_texts())


def test_no_members_says_so():
    fig = seed_curves({}, "nothing")
    assert "no member has evaluation records" in [t.get_text() for t in fig.axes[0].texts]
