"""Phase diagrams and the summary table on hand-made rows whose medians and markers are known."""

from __future__ import annotations

import csv
import io

import numpy as np
from matplotlib.collections import PathCollection

from groklab.sweeps.aggregate import SUMMARY_COLUMNS, summary_csv
from groklab.sweeps.figures import phase_diagram, phase_diagrams


def row(wd, seed, grok, state="completed", steps=1000, lr=1e-3):
    return {
        "optim.weight_decay": wd,
        "seed": seed,
        "optim.lr": lr,
        "state": state,
        "steps": steps,
        "grokking_step": grok,
    }


def errorbars(ax):
    """{x: (median, ci low, ci high)} of the drawn error bars."""
    out = {}
    for c in ax.containers:
        (x,), (y,) = c.lines[0].get_data()
        ((_, lo), (_, hi)) = c.lines[2][0].get_segments()[0]
        out[float(x)] = (float(y), float(lo), float(hi))
    return out


def test_median_and_its_ci_over_seeds_with_known_answers():
    rows = [row(1.0, s, 100 * (s + 1)) for s in range(9)]  # 100..900
    rows += [row(2.0, s, g) for s, g in enumerate([100, 200, 300, 400, None, None])]  # 2 of 6 never grokked
    rows += [row(3.0, s, g) for s, g in enumerate([100, None, 300, None, None, 200])]  # 3 of 6: median unknown
    ax = phase_diagram(rows, "optim.weight_decay", []).axes[0]
    ceiling = 1000 * 1.08
    bars = errorbars(ax)
    # 9 seeds: median X_(5), CI [X_(2), X_(8)] (coverage 0.961)
    assert bars[1.0] == (500.0, 200.0, 800.0)
    # 6 seeds: median (X_(3) + X_(4)) / 2; CI [X_(1), X_(6)] whose upper end is censored: up to the ceiling
    assert bars[2.0] == (350.0, 100.0, ceiling)
    assert 3.0 not in bars  # X_(4) is censored: drawn as "never grokked", not as a number
    (censored,) = [c for c in ax.collections if c.get_gid() == "censored median 3.0"]
    assert [tuple(o) for o in censored.get_offsets()] == [(3.0, ceiling)]
    assert "coverage 0.96/0.97, over 9 seeds" in ax.get_title()  # 9 seeds: 0.961, 6 seeds: 0.969


def test_phase_diagram_medians_spread_and_never_grokked_markers():
    rows = [
        row(0.3, 0, None), row(0.3, 1, None), row(0.3, 2, 900),  # median: never
        row(1.0, 0, 400), row(1.0, 1, 600), row(1.0, 2, 500),  # median 500, spread 400..600
        row(3.0, 0, 200), row(3.0, 1, None), row(3.0, 2, 100),  # median 200, bar up to the ceiling
        row(10.0, 0, 50, state="running"),  # not finished: left out
    ]  # fmt: skip
    fig = phase_diagram(rows, "optim.weight_decay", [])
    ax = fig.axes[0]
    ceiling = 1000 * 1.08
    (line,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2]
    assert list(line.get_xdata()) == [1.0, 3.0] and list(line.get_ydata()) == [500.0, 200.0]
    markers = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    offsets = np.concatenate([c.get_offsets() for c in markers])
    big_x = [tuple(o) for c in markers for o in c.get_offsets() if c.get_sizes()[0] == 70]
    assert big_x == [(0.3, ceiling)]  # the never-grokked median drawn on the "never" line
    assert (10.0, 50.0) not in {tuple(o) for o in offsets}
    assert ax.get_xscale() == "log"
    texts = [t.get_text() for t in ax.texts]
    assert any("never grokked (budget 1000 steps)" in t for t in texts)


def test_one_diagram_per_axis_seeds_are_replicates_and_effective_weight_decay():
    rows = [row(wd, s, 100 * s + 100, lr=lr) for wd in (0.5, 1.0) for lr in (1e-3, 3e-3) for s in (0, 1)]
    figs = phase_diagrams(rows, ["optim.weight_decay", "optim.lr", "seed"])
    assert sorted(figs) == [
        "grokking_step_vs_effective_weight_decay",
        "grokking_step_vs_optim_lr",
        "grokking_step_vs_optim_weight_decay",
    ]
    assert "over 2 seeds" in figs["grokking_step_vs_optim_lr"].axes[0].get_title()
    assert sorted(phase_diagrams(rows[:2], ["seed"])) == ["grokking_step_vs_seed"]


def test_categorical_axis():
    rows = [
        {"task.op": op, "state": "completed", "steps": 100, "grokking_step": g} for op, g in [("sub", 40), ("add", 20)]
    ]
    ax = phase_diagram(rows, "task.op", []).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["add", "sub"]


def test_summary_csv_columns_and_empty_cells():
    rows = [{"run_id": "a", "optim.lr": 0.001, "state": "failed", "error": "boom, badly"}]
    text = summary_csv(rows, ["optim.lr"])
    header, first = list(csv.reader(io.StringIO(text)))
    assert header == ["run_id", "optim.lr", *SUMMARY_COLUMNS]
    assert dict(zip(header, first, strict=True)) | {} == {
        "run_id": "a", "optim.lr": "0.001", **dict.fromkeys(SUMMARY_COLUMNS, ""), "state": "failed", "error": "boom, badly",
    }  # fmt: skip
