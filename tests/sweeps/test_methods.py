"""The method-comparison table on synthetic sweep rows with known answers."""

import pytest

from groklab.sweeps.methods import method_figure, method_markdown, method_table


def _rows(method, steps, budget=1000):
    return [
        {"run_id": f"{method}{s}", "name": method, "seed": s, "state": "completed", "grokking_step": g, "steps": budget}
        for s, g in enumerate(steps)
    ]


def test_paired_table_with_censored_runs():
    rows = _rows("base", [400, 500, 600, 700, 800]) + _rows("fast", [100, 250, 200, 350, 400])
    rows += _rows("slow", [None, 900, None, None, 600])
    table = {r.method: r for r in method_table(rows, baseline="base")}
    assert table["base"].stats.median == 600 and table["base"].speedup is None
    fast = table["fast"]
    assert fast.stats.median == 250 and (fast.stats.ci_low, fast.stats.ci_high) == (100, 400)
    # per seed: 4, 2, 3, 2, 2 -> median 2, interval [2, 4]
    assert fast.speedup is not None and (fast.speedup.median, fast.speedup.ci_low, fast.speedup.ci_high) == (2, 2, 4)
    slow = table["slow"]
    assert slow.stats.median is None and slow.stats.n_censored == 3  # censored, not dropped
    assert slow.speedup is not None and slow.speedup.median is None  # three seeds below every observed ratio
    # those three ratios are below 400/1000, 600/1000 and 700/1000: the median is below 0.70
    assert slow.n_below == 3 and slow.speedup_below == 0.7
    md = method_markdown(list(table.values()), "base")
    assert "| slow | > 1000 [600, > 1000] | 2/5 | < 0.70 [< 0.70, 1.33] |" in md and "0.9375" in md
    assert "| fast | 250 [100, 400] | 5/5 | 2.00 [2.00, 4.00] |" in md
    never = method_markdown(method_table(_rows("base", [100, 200]) + _rows("never", [None, None]), "base"), "base")
    assert "| never | > 1000 [> 1000, > 1000] | 0/2 | < 0.20 [< 0.20, < 0.20] |" in never
    assert method_figure(list(table.values())).axes[0].get_yticklabels()[0].get_text() == "slow"


def test_unpaired_or_unfinished_runs_are_refused():
    with pytest.raises(ValueError, match="not paired"):
        method_table(_rows("base", [1, 2, 3]) + _rows("x", [1, 2]), baseline="base")
    rows = _rows("base", [1, 2])
    rows[1]["state"] = "failed"
    with pytest.raises(ValueError, match="not completed"):
        method_table(rows, baseline="base")
    with pytest.raises(ValueError, match="baseline"):
        method_table(_rows("a", [1]), baseline="base")
