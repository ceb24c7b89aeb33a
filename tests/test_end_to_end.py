"""The one honest end-to-end grokking test: the `quick` preset groks, and the analysis finds its algorithm."""

from groklab.config import load_config
from groklab.runs import Run


def test_quick_preset_groks_and_is_taken_apart(tmp_path, cli):
    out = tmp_path / "quick"
    r = cli("train", "--config", "quick", "--out", out, timeout=600)
    assert r.returncode == 0, r.stderr
    run = Run(out)
    metrics = run.metrics()
    assert metrics[-1]["test_acc"] >= 0.95

    r = cli("analyze", out, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = run.analysis("summary")
    events = summary["events"]
    assert events["memorization_step"] is not None and events["grokking_step"] is not None
    assert events["delay"] == events["grokking_step"] - events["memorization_step"] > 0

    p = load_config("quick").task.p
    keys = summary["key_frequencies"]
    assert keys and len(set(keys)) == len(keys) and all(1 <= k <= (p - 1) // 2 for k in keys)
    assert summary["key_frequency_source"] == "neuron clusters"
    ablation = run.analysis("ablation")
    assert ablation["frequency"]["key"]["acc_drop"] >= 30
    assert ablation["frequency"]["control"]["acc_drop"]["mean"] < 5
