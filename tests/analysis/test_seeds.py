"""Statistics over seeds on synthetic summaries whose medians, quartiles and intervals are known."""

from __future__ import annotations

import json
import math

import pytest

from groklab.analysis.seeds import aggregate_seeds, median_curve, seed_group_key
from groklab.analysis.stats import median_ci_ranks
from groklab.records import SeedAggregate, SeedMember, from_json, to_json
from seed_helpers import BUDGET, summary


def test_eight_seeds_that_all_grokked():
    order = [3, 0, 7, 5, 1, 6, 2, 4]  # seeds in any order: the aggregate sorts them
    agg = aggregate_seeds([summary(s, 100 * (s + 1), cleanup=100 * (s + 1) + 30) for s in order])
    g = agg.quantity("grokking_step")
    lo, hi, coverage = median_ci_ranks(8)
    assert (lo, hi) == (1, 8) and math.isclose(coverage, 1 - 2 / 2**8)
    assert (g.n, g.n_censored, g.n_left_out) == (8, 0, 0)
    assert g.median == 450  # (X_(4) + X_(5)) / 2 of 100..800
    assert (g.q1, g.q3) == (200, 600)  # ranks ceil(8/4) = 2 and ceil(24/4) = 6
    assert (g.ci_low, g.ci_high, g.ci_coverage) == (100, 800, coverage)
    assert g.reason is None
    assert g.values == {s: 100.0 * (s + 1) for s in range(8)}
    assert agg.quantity("delay").median == 400  # memorized at 50 each
    assert agg.quantity("cleanup_end").median == 480
    assert (agg.n_included, agg.n_grokked, agg.fraction_grokked) == (8, 8, 1.0)
    assert agg.seeds == list(range(8)) and [m.seed for m in agg.members] == list(range(8))


def test_three_of_eight_censored_make_the_upper_statistics_unknown():
    keys = {0: (1,), 1: (1, 2), 2: (1, 2, 3), 3: (2, 3, 5), 4: (1, 2, 3, 4)}
    summaries = [summary(s, 100 * (s + 1), keys=keys[s], drop=90.0 + s) for s in range(5)]
    summaries += [summary(s, None) for s in (5, 6, 7)]  # never grokked within 1000 steps
    agg = aggregate_seeds(summaries)
    g = agg.quantity("grokking_step")
    assert (g.n, g.n_censored) == (8, 3)
    # sorted: 100..500, then three censored runs above every observed value
    assert g.median == 450 and g.q1 == 200 and g.ci_low == 100
    assert g.q3 is None and g.ci_high is None  # ranks 6 and 8 land on censored runs
    assert "q3" in g.reason and "ci_high" in g.reason and "censored" in g.reason
    assert g.values[6] is None and g.censored_at[6] == BUDGET
    assert g.value_reasons[6].startswith("censored (> 1000)") and "never reached 0.95" in g.value_reasons[6]
    assert agg.fraction_grokked == 5 / 8 and agg.n_grokked == 5
    # the delay of a censored run is "more than 1000 - 50 = 950", above every observed delay
    d = agg.quantity("delay")
    assert d.median == 400 and d.censored_at[5] == 950 and d.q3 is None
    # phase boundaries of runs that never grokked are censored at their last step
    c = agg.quantity("circuit_formation_end")
    assert c.n_censored == 3 and c.median == 430 and c.ci_high is None
    # key frequencies: over the 5 that grokked (counts 1, 2, 3, 3, 4); the others left out, not zero
    k = agg.quantity("n_key_frequencies")
    assert (k.n, k.n_censored, k.n_left_out) == (5, 0, 3)
    assert (k.median, k.q1, k.q3) == (3, 2, 3)
    assert (k.ci_low, k.ci_high) == (1, 4) and math.isclose(k.ci_coverage, 1 - 2 / 32)  # 5 values: widest, 0.9375
    assert k.values[7] is None and "did not grok" in k.value_reasons[7] and "over 5 of 8" in k.reason
    assert agg.quantity("key_frequency_acc_drop").median == 92.0
    assert agg.quantity("final_test_acc").median == pytest.approx(0.99)  # ranks 4, 5 of [0.3 x3, 0.99 x5]


def test_four_of_eight_censored_leave_the_median_unknown():
    agg = aggregate_seeds([summary(s, 100 * (s + 1)) for s in range(4)] + [summary(s, None) for s in range(4, 8)])
    g = agg.quantity("grokking_step")
    assert g.median is None and "median" in g.reason  # X_(5) is a censored run
    assert g.q1 == 200 and g.ci_low == 100


def test_unplaced_boundary_of_a_grokked_run_is_left_out_not_censored():
    agg = aggregate_seeds([summary(0, 300, cleanup=400), summary(1, 500, cleanup=None), summary(2, 700, cleanup=900)])
    c = agg.quantity("cleanup_end")
    assert (c.n, c.n_censored, c.n_left_out) == (2, 0, 1)
    assert c.median == 650 and c.values[1] is None and "cleanup has not ended" in c.value_reasons[1]


def test_failed_members_are_listed_with_their_state_and_mixed_configs_refused():
    failed = SeedMember(3, "seed_3", "failed", False, "training failed: loss is NaN at step 120")
    agg = aggregate_seeds([summary(0, 300), summary(1, 500)], left_out=[failed])
    assert agg.seeds == [0, 1, 3] and agg.n_included == 2 and agg.fraction_grokked == 1.0
    assert [(m.seed, m.state, m.included) for m in agg.members] == [
        (0, "completed", True), (1, "completed", True), (3, "failed", False)
    ]  # fmt: skip
    assert 3 not in agg.quantity("grokking_step").values
    assert any("seed 3" in w and "NaN" in w for w in agg.warnings)
    with pytest.raises(ValueError, match="not one config"):
        aggregate_seeds([summary(0, 300), summary(1, 500, op="sub")])
    with pytest.raises(ValueError, match="twice"):
        aggregate_seeds([summary(0, 300), summary(0, 500)])
    none = aggregate_seeds([], left_out=[failed])
    assert none.fraction_grokked is None and none.fraction_grokked_reason
    assert none.quantity("grokking_step").median is None


def test_round_trip_through_json():
    agg = aggregate_seeds([summary(s, 100 * (s + 1), keys=(s + 1,), drop=50.0) for s in range(3)] + [summary(3, None)])
    back = from_json(SeedAggregate, json.loads(json.dumps(to_json(agg))), "aggregate")
    assert back == agg
    assert back.quantity("grokking_step").censored_at == {3: 1000.0}


def test_median_curve_over_the_seeds_still_running():
    metrics = {
        0: [{"step": 0, "test_acc": 0.0}, {"step": 10, "test_acc": 0.2}, {"step": 20, "test_acc": 0.9}],
        1: [{"step": 0, "test_acc": 0.1}, {"step": 10, "test_acc": 0.4}],  # stopped at step 10
        2: [{"step": 0, "test_acc": 0.3}, {"step": 10, "test_acc": float("nan")}, {"step": 20, "test_acc": 0.5}],
    }
    c = median_curve(metrics, "test_acc")
    assert c.steps == [0, 10, 20]
    assert c.median == [0.1, pytest.approx(0.3), pytest.approx(0.7)]
    assert c.n == [3, 2, 2]
    assert (c.q1[0], c.q3[0]) == (0.0, 0.3)


def test_seed_group_key_ignores_only_seeds_and_name():
    a = {"name": "x", "seed": 0, "task": {"p": 97, "split_seed": 0}, "optim": {"lr": 1e-3}}
    b = {"name": "y", "seed": 5, "task": {"p": 97, "split_seed": 5}, "optim": {"lr": 1e-3}}
    c = {"name": "x", "seed": 0, "task": {"p": 97, "split_seed": 0}, "optim": {"lr": 2e-3}}
    assert seed_group_key(a) == seed_group_key(b) != seed_group_key(c)
    assert a["seed"] == 0 and a["task"]["split_seed"] == 0  # the input is not changed
