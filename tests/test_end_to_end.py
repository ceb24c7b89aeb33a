"""The honest end-to-end tests: the `quick` preset groks on add, mul and div, and the analysis finds
its algorithm in each operation's own basis (the identity for add, the discrete log for mul and div)."""

import pytest

from groklab.config import load_config
from groklab.runs import Run


@pytest.mark.parametrize(("op", "kind"), [("add", "identity"), ("mul", "discrete_log"), ("div", "discrete_log_div")])
def test_quick_preset_groks_and_is_taken_apart(tmp_path, cli, op, kind):
    out = tmp_path / "quick"
    r = cli("train", "--config", "quick", "--set", f"task.op={op}", "--out", out, timeout=900)
    assert r.returncode == 0, r.stderr
    run = Run(out)
    metrics = run.metric_records()
    assert metrics[-1]["test_acc"] >= 0.95

    r = cli("analyze", out, timeout=900)
    assert r.returncode == 0, r.stderr
    analysis = run.analysis
    events = analysis.events
    assert events.memorization_step is not None and events.grokking_step is not None
    assert events.delay == events.grokking_step - events.memorization_step > 0

    basis = analysis.summary.basis
    assert basis.kind == kind and basis.n == (97 if op == "add" else 96)
    keys = analysis.key_frequencies
    assert 1 <= len(keys) <= 8 and len(set(keys)) == len(keys) and all(1 <= k <= basis.n // 2 for k in keys)
    assert analysis.summary.key_frequencies_reason is None  # found from the neuron clusters
    assert keys == analysis.neurons.key_frequencies
    freq = analysis.ablation.frequency
    assert freq is not None and freq.key.acc_drop >= 30  # removing the key frequencies breaks the model
    assert freq.control.acc_drop is not None and freq.control.acc_drop.mean < 5  # as many others do not
    assert load_config("quick").task.p == 97
