"""Oracles for the ablations: the fast cached paths against plain hooked forward passes."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from groklab.analysis.ablation import ablate_frequencies, ablation_report, head_ablation, neuron_ablation
from groklab.analysis.basis import basis_of
from groklab.analysis.fourier import embedding_spectrum, fourier_basis, remove_frequencies
from groklab.config import ModelConfig
from groklab.data import make_dataset, make_split
from groklab.models import build_model
from groklab.records import to_json

D = torch.float64
P = 11


def small(arch: str, layernorm: bool = False, n_layers: int = 1):
    cfg = ModelConfig(
        arch=arch,
        n_layers=n_layers,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_mlp=24,
        layernorm=layernorm,
        d_embed=8,
        hidden=[24],
    )
    model = build_model(cfg, P, seed=1)
    ds = make_dataset("add", P)
    _, test = make_split(ds, 0.5, 0)
    return model, ds, test


def hooked_score(model, ds, test, neurons):
    """Test (acc, loss) with ``neurons`` of the last MLP mean-ablated at `=`, by hooks on the full forward."""
    _, post_name = model.neuron_hooks
    with torch.no_grad():
        _, cache = model.run_with_cache(ds.tokens, names_filter=[post_name])
        post = cache[post_name]
        mean = (post[:, -1] if post.ndim == 3 else post).mean(0)
        idx = torch.as_tensor(list(neurons), dtype=torch.long)

        def fn(x, hp):
            x = x.clone()
            if x.ndim == 3:
                x[:, -1, idx] = mean[idx]
            else:
                x[:, idx] = mean[idx]
            return x

        rows = ds.rows(torch.as_tensor(test))
        logits = model.run_with_hooks(ds.tokens[rows], fwd_hooks=[(post_name, fn)])
        logits = logits[:, -1] if logits.ndim == 3 else logits
        labels = ds.labels[rows]
    return float((logits.argmax(-1) == labels).double().mean()), float(F.cross_entropy(logits.double(), labels))


@pytest.mark.parametrize(
    ("arch", "layernorm", "n_layers"),
    [("transformer", False, 1), ("transformer", True, 1), ("transformer", False, 2), ("mlp", False, 1)],
)
def test_neuron_ablation_matches_hooked_forward(arch, layernorm, n_layers):
    model, ds, test = small(arch, layernorm, n_layers)
    clusters = {2: [0, 5, 7], 4: [1, 2]}
    out = neuron_ablation(model, ds, test, clusters, n_draws=3, top=5, seed=0)
    base_acc, base_loss = hooked_score(model, ds, test, [])
    assert out.baseline.test_acc == pytest.approx(base_acc)
    assert out.baseline.test_loss == pytest.approx(base_loss, rel=1e-4)
    for n in (0, 3, 23):
        acc, loss = hooked_score(model, ds, test, [n])
        assert out.importance[n] == pytest.approx(loss - base_loss, rel=1e-3, abs=1e-5)
    assert [t.neuron for t in out.top] == sorted(range(24), key=lambda n: -out.importance[n])[:5]
    for c in out.clusters:
        acc, loss = hooked_score(model, ds, test, clusters[c.k])
        assert c.ablated.test_acc == pytest.approx(acc) and c.ablated.test_loss == pytest.approx(loss, rel=1e-4)
        assert c.random.n_draws == 3 and c.random.pool == "outside the cluster"
    acc, loss = hooked_score(model, ds, test, [0, 1, 2, 5, 7])
    assert out.all_clusters.size == 5 and out.all_clusters.test_loss == pytest.approx(loss, rel=1e-4)
    cum = out.cumulative
    order = cum.order
    assert sorted(order) == list(range(24)) and cum.n_ablated == list(range(25))
    for m in (1, 6, 24):
        acc, loss = hooked_score(model, ds, test, order[:m])
        assert cum.test_acc[m] == pytest.approx(acc)
        if m in cum.loss_n_ablated:
            assert cum.test_loss[cum.loss_n_ablated.index(m)] == pytest.approx(loss, rel=1e-4)
    rnd = cum.random
    assert rnd.n_ablated[0] == 0 and rnd.n_ablated[-1] == 24
    assert rnd.test_acc_std[-1] == pytest.approx(0.0, abs=1e-12)  # all neurons: the same whatever the order
    assert torch.get_num_threads() >= 1


def test_one_draw_gives_zero_spread_and_zero_draws_are_refused():
    model, ds, test = small("mlp")
    one = neuron_ablation(model, ds, test, {1: [0, 1, 2]}, n_draws=1)
    json.dumps(to_json(one), allow_nan=False)
    assert one.clusters[0].random.test_acc.std == 0.0
    with pytest.raises(ValueError):
        neuron_ablation(model, ds, test, {}, n_draws=0)


def test_neuron_ablation_is_seeded():
    model, ds, test = small("mlp")
    one = neuron_ablation(model, ds, test, {1: [0, 1, 2]}, n_draws=4, seed=3)
    two = neuron_ablation(model, ds, test, {1: [0, 1, 2]}, n_draws=4, seed=3)
    assert one.clusters == two.clusters and one.cumulative.random == two.cumulative.random


def test_remove_frequencies_projects_out_exactly_those_rows():
    p = 13
    x = torch.arange(p, dtype=D)
    W = torch.stack(
        [torch.cos(2 * math.pi * 2 * x / p), torch.sin(2 * math.pi * 5 * x / p + 1), torch.ones(p, dtype=D)], 1
    )
    basis = basis_of(make_dataset("add", p))
    out = remove_frequencies(W, [2], basis)
    spec = embedding_spectrum(out, basis)
    assert spec[2 - 1] < 1e-12 and spec[5 - 1] == pytest.approx(float(embedding_spectrum(W, basis)[5 - 1]))
    torch.testing.assert_close(out[:, 1:], W[:, 1:])  # other frequencies and the constant untouched
    torch.testing.assert_close(remove_frequencies(out, [2], basis), out)  # a projection
    F_ = fourier_basis(p)
    torch.testing.assert_close(F_[[3, 4]] @ out, torch.zeros(2, 3, dtype=D), atol=1e-12, rtol=0)


@pytest.mark.parametrize("arch", ["transformer", "mlp"])
def test_frequency_ablation_leaves_the_model_alone(arch):
    model, ds, test = small(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = ds.rows(torch.as_tensor(test))
    out = ablate_frequencies(model, ds, rows, [1, 2, 3, 4, 5])  # every frequency: only the constant is left
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert set(out) == {"test_acc", "test_loss"}
    none = ablate_frequencies(model, ds, rows, [])
    acc, loss = hooked_score(model, ds, test, [])
    assert none["test_acc"] == pytest.approx(acc) and none["test_loss"] == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize(("layernorm", "n_layers"), [(False, 1), (True, 1), (False, 2)])
def test_head_ablation_uses_the_mean_output(layernorm, n_layers):
    model, ds, test = small("transformer", layernorm, n_layers)
    heads, reason = head_ablation(model, ds, test)
    assert reason is None
    assert [(h.layer, h.head) for h in heads] == [(i, h) for i in range(n_layers) for h in range(2)]
    rows = ds.rows(torch.as_tensor(test))
    with torch.no_grad():
        base = F.cross_entropy(model.eq_logits(ds.tokens[rows]).double(), ds.labels[rows])
    for entry in heads:  # by hand: z[:, :, h] replaced by its mean over all inputs (per position)
        name, h = f"blocks.{entry.layer}.attn.hook_z", entry.head
        with torch.no_grad():
            _, cache = model.run_with_cache(ds.tokens, names_filter=[name])
            mean = cache[name].mean(0)

            def fn(z, hp, h=h, mean=mean):
                z = z.clone()
                z[:, :, h] = mean[:, h]
                return z

            logits = model.run_with_hooks(ds.tokens[rows], fwd_hooks=[(name, fn)])[:, -1]
        loss = float(F.cross_entropy(logits.double(), ds.labels[rows]))
        assert entry.test_loss == pytest.approx(loss, rel=1e-5)
        assert abs(loss - float(base)) > 1e-6  # the ablation did something
    mlp, _, _ = small("mlp")
    none, why = head_ablation(mlp, ds, test)
    assert none is None and "no attention heads" in why


@pytest.mark.parametrize("op", ["div", "mul"])
def test_report_on_non_additive_tasks(op):
    """Neuron and head ablations need no Fourier structure: they run on the valid pairs (div: b != 0)."""
    model = build_model(ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=24), P, seed=1)
    ds = make_dataset(op, P)
    _, test = make_split(ds, 0.5, 0)
    rep = ablation_report(model, ds, test, [], {}, n_draws=2)
    assert rep.frequency is None and rep.frequency_reason == "no key frequencies were found"
    acc, loss = hooked_score(model, ds, test, [])
    assert rep.baseline.test_loss == pytest.approx(loss, rel=1e-5)
    assert len(rep.neurons.importance) == 24 and len(rep.heads) == 2
    json.dumps(to_json(rep), allow_nan=False)
