"""The one honest end-to-end grokking test: the `quick` preset groks, and the analysis finds its algorithm."""

from groklab.config import load_config
from groklab.runs import Run


def test_quick_preset_groks_and_is_taken_apart(tmp_path, cli):
    out = tmp_path / "quick"
    r = cli("train", "--config", "quick", "--out", out, timeout=600)
    assert r.returncode == 0, r.stderr
    run = Run(out)
    metrics = run.metric_records()
    assert metrics[-1]["test_acc"] >= 0.95

    r = cli("analyze", out, timeout=600)
    assert r.returncode == 0, r.stderr
    analysis = run.analysis
    events = analysis.events
    assert events.memorization_step is not None and events.grokking_step is not None
    assert events.delay == events.grokking_step - events.memorization_step > 0

    task = load_config("quick").task
    summary = analysis.summary
    assert task.op == "add" and (summary.basis.kind, summary.basis.n) == ("identity", task.p)  # Z_p itself
    keys = analysis.key_frequencies
    assert keys and len(set(keys)) == len(keys) and all(1 <= k <= (task.p - 1) // 2 for k in keys)
    assert summary.key_frequencies_reason is None  # found from the neuron clusters
    assert keys == analysis.neurons.key_frequencies
    freq = analysis.ablation.frequency
    assert freq is not None and freq.key.acc_drop >= 30
    assert freq.control.acc_drop is not None and freq.control.acc_drop.mean < 5
