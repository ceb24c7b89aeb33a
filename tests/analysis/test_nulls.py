"""Honest nulls on real runs: a model with no Fourier structure gets empty key frequencies with the
reason, and no criterion that needs the algorithm passes by accident."""

from __future__ import annotations

import groklab as gl
from groklab.analysis.neurons import analyze_neurons
from groklab.config import ModelConfig
from groklab.data import make_dataset
from groklab.models import build_model


def test_a_memorizing_only_run_has_no_key_frequencies(tmp_path):
    # no weight decay and little data: the debug model memorizes the training pairs and never generalizes
    run = gl.train("debug", set=["optim.weight_decay=0", "task.train_frac=0.3", "train.steps=400"], out=tmp_path / "m")
    a = gl.analyze(run)
    assert a.events.memorization_step is not None and a.events.grokking_step is None
    assert a.key_frequencies == [] and "no neuron cluster" in a.summary.key_frequencies_reason
    assert a.neurons.embedding_key_frequencies == [] and "stands out" in a.neurons.embedding_reason
    assert a.ablation.frequency is None and a.ablation.frequency_reason == a.summary.key_frequencies_reason
    assert all(p.restricted_loss is None and p.null_reasons["restricted_loss"] for p in a.progress)
    passed = {c.name for c in a.criteria if c.passed}
    assert passed <= {"memorization_first"}  # it did memorize first; nothing else is true of it
    for c in a.criteria:
        assert c.passed or c.detail  # every failure says why


def test_untrained_models_of_every_operation_have_no_key_frequencies():
    model = build_model(ModelConfig(d_model=64, n_heads=4, d_head=16, d_mlp=256), 31, seed=0)
    for op in ("add", "sub", "mul", "div"):
        na = analyze_neurons(model, make_dataset(op, 31))
        assert na.key_frequencies == [] and na.key_frequencies_reason, op
        assert na.embedding_key_frequencies == [] and na.embedding_reason, op
