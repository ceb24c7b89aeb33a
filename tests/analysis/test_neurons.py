"""Oracles for neuron frequencies, clusters and key frequencies on synthetic activations."""

from __future__ import annotations

import math

import pytest
import torch

from groklab.analysis.basis import basis_of
from groklab.analysis.fourier import embedding_spectrum, fourier_basis, n_freqs
from groklab.analysis.neurons import (
    analyze_neurons,
    embedding_null,
    eq_activations,
    frequency_agreement,
    frequency_clusters,
    key_frequencies_from_clusters,
    key_frequencies_from_embedding,
    min_cluster_size,
    neuron_frequencies,
    neuron_fve,
)
from groklab.config import ModelConfig
from groklab.data import make_dataset
from groklab.models import build_model
from groklab.records import Agreement

D = torch.float64


def grid(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(p * p)
    return (idx // p).to(D), (idx % p).to(D)


def w(k: int, p: int) -> float:
    return 2 * math.pi * k / p


def brute_fve(post: torch.Tensor, p: int) -> torch.Tensor:
    """FVE straight from the definition, with loops (rows of the cos-only p/2 of even p: {0, p-1})."""
    F = fourier_basis(p)
    N = post - post.mean(0)
    out = torch.zeros(post.shape[1], n_freqs(p), dtype=D)
    for n in range(post.shape[1]):
        C = (F @ N[:, n].reshape(p, p) @ F.T) ** 2
        for k in range(1, n_freqs(p) + 1):
            S = [0, p - 1] if 2 * k == p else [0, 2 * k - 1, 2 * k]
            inside = sum(C[i, j] for i in S for j in S) - C[0, 0]
            out[n, k - 1] = inside / C.sum()
    return out


def fve(post: torch.Tensor, p: int) -> torch.Tensor:
    """neuron_fve of ``post [p*p, d]`` over all pairs in a-major order (the identity basis)."""
    return neuron_fve(post.reshape(p, p, -1))


@pytest.mark.parametrize("p", [7, 8])
def test_fve_matches_the_definition(p):
    post = torch.randn(p * p, 5, dtype=D, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fve(post, p), brute_fve(post, p))


@pytest.mark.parametrize("p", [13, 14])
def test_fve_of_known_neurons(p):
    a, b = grid(p)
    cols = [
        torch.cos(w(2, p) * a) * torch.cos(w(2, p) * b),  # product of one frequency: FVE_2 = 1
        torch.cos(w(3, p) * (a + b) + 0.4),  # a function of a+b: FVE_3 = 1
        torch.cos(w(p - 4, p) * a) + torch.sin(w(p - 4, p) * b),  # frequency p-4 is frequency 4
        torch.cos(w(2, p) * a) + torch.cos(w(5, p) * b),  # two frequencies, equal energy: 1/2 each
        torch.full((p * p,), 3.0, dtype=D),  # constant: no frequency, score 0
    ]
    table = fve(torch.stack(cols, 1), p)
    assert table.shape == (5, n_freqs(p))
    torch.testing.assert_close(table[0, 2 - 1], torch.tensor(1.0, dtype=D))
    torch.testing.assert_close(table[1, 3 - 1], torch.tensor(1.0, dtype=D))
    torch.testing.assert_close(table[2, 4 - 1], torch.tensor(1.0, dtype=D))
    torch.testing.assert_close(table[3, [1, 4]], torch.tensor([0.5, 0.5], dtype=D))
    assert table[4].abs().max() == 0
    freq, score = neuron_frequencies(table)
    assert freq.tolist()[:3] == [2, 3, 4] and freq[4] == 0 and score[4] == 0
    assert all(1 <= k <= p // 2 for k in freq[:4].tolist())  # never p - k


def test_clusters_threshold_is_inclusive():
    freq = torch.tensor([3, 3, 3, 5, 5, 0, 7])
    score = torch.tensor([0.85, 0.9, 0.8499, 1.0, 0.95, 0.0, 0.3], dtype=D)
    assert frequency_clusters(freq, score) == {3: [0, 1], 5: [3, 4]}
    assert frequency_clusters(freq, score, threshold=0.2) == {3: [0, 1, 2], 5: [3, 4], 7: [6]}


def test_key_frequencies_need_max_2_or_1_percent_of_neurons():
    assert min_cluster_size(64) == 2 and min_cluster_size(512) == pytest.approx(5.12)
    clusters = {1: [0], 2: [1, 2], 4: list(range(3, 8)), 9: list(range(10, 16))}
    assert key_frequencies_from_clusters(clusters, 64) == [(2, 2), (4, 5), (9, 6)]
    assert key_frequencies_from_clusters(clusters, 512) == [(9, 6)]  # 5 < 5.12 <= 6


def test_key_frequencies_from_embedding_norms():
    spec = torch.tensor([0.1, 4.0, 1.0, 0.99, 2.0], dtype=D)
    assert key_frequencies_from_embedding(spec, null=0.5) == [2, 3, 5]  # >= 4.0 / 4 and above the null
    assert key_frequencies_from_embedding(spec, null=1.5) == [2, 5]  # the null decides first
    assert key_frequencies_from_embedding(spec, null=4.0) == []  # nothing stands out
    assert key_frequencies_from_embedding(torch.zeros(5), null=0.0) == []


def test_embedding_null_separates_structure_from_noise():
    p = 31
    basis = basis_of(make_dataset("add", p))
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(p, 64, dtype=D, generator=gen)  # what an untrained embedding looks like
    assert embedding_null(noise, basis) >= float(embedding_spectrum(noise, basis).max())
    x = torch.arange(p, dtype=D)
    structured = noise * 0.1
    structured[:, 0] += 3 * torch.cos(w(4, p) * x)
    structured[:, 1] += 3 * torch.sin(w(4, p) * x)
    structured[:, 2] += 3 * torch.cos(w(11, p) * x + 1.0)
    structured[:, 3] += 3 * torch.sin(w(11, p) * x + 1.0)
    spec = embedding_spectrum(structured, basis)
    assert key_frequencies_from_embedding(spec, embedding_null(structured, basis)) == [4, 11]


def test_agreement():
    agree = frequency_agreement([3, 7, 9], [7, 3, 11])
    assert agree == Agreement(both=[3, 7], only_neurons=[9], only_embedding=[11], jaccard=0.5, identical=False)
    assert frequency_agreement([], []).identical and frequency_agreement([], []).jaccard == 1.0


@pytest.mark.parametrize("arch", ["transformer", "mlp"])
def test_eq_activations_match_the_full_forward(arch):
    p = 7
    cfg = ModelConfig(arch=arch, d_model=16, n_heads=2, d_head=8, d_mlp=24, d_embed=8, hidden=[24])
    model = build_model(cfg, p, seed=0)
    ds = make_dataset("add", p)
    pre, post, logits = eq_activations(model, ds.tokens)
    _, cache = model.run_with_cache(ds.tokens)
    full_pre, full_post = (cache[n] for n in model.neuron_hooks)
    if full_pre.ndim == 3:
        full_pre, full_post = full_pre[:, -1], full_post[:, -1]
    torch.testing.assert_close(pre, full_pre, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(post, full_post, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, model.eq_logits(ds.tokens).detach(), atol=1e-5, rtol=1e-5)
    assert model.training  # mode restored


@pytest.mark.parametrize("op", ["div", "mul"])
def test_division_and_multiplication_are_analysed_in_discrete_log_coordinates(op):
    p = 7
    model = build_model(ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=24), p, seed=0)
    na = analyze_neurons(model, make_dataset(op, p))
    assert na.basis.kind.startswith("discrete_log") and na.basis.n == 6 and na.basis.generator == 3
    assert na.defined and len(na.fve) == 24 and len(na.fve[0]) == 3  # k = 1, 2 and the cos-only 3
    assert len(na.embedding_norms) == 3


@pytest.mark.parametrize("op", ["x2+xy+y2", "x3+xy"])
def test_no_structure_map_means_no_frequencies_with_the_reason(op):
    model = build_model(ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=24), 7, seed=0)
    na = analyze_neurons(model, make_dataset(op, 7))
    assert not na.defined and na.key_frequencies == [] and na.embedding_norms is None
    assert "no map" in na.reason and na.reason == na.key_frequencies_reason == na.embedding_reason


@pytest.mark.parametrize("p", [31, 113])
def test_untrained_model_has_no_key_frequencies(p):
    """An untrained nanda-width model: no cluster, no embedding frequency stands out; reasons given."""
    model = build_model(ModelConfig(), p, seed=1)
    na = analyze_neurons(model, make_dataset("add", p))
    assert na.key_frequencies == [] and "no neuron cluster" in na.key_frequencies_reason
    assert na.embedding_key_frequencies == [] and "stands out" in na.embedding_reason


def test_random_model_is_analysed_without_inventing_clusters():
    p = 11
    model = build_model(ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=32), p, seed=0)
    na = analyze_neurons(model, make_dataset("add", p))
    assert na.defined and na.basis.kind == "identity"
    assert len(na.neuron_frequency) == 32 and len(na.fve) == 32 and len(na.fve[0]) == n_freqs(p)
    for c in na.clusters:  # every listed member really scores >= 0.85 at that frequency
        for n in c.neurons:
            assert na.neuron_frequency[n] == c.k and na.neuron_score[n] >= 0.85
    assert na.n_clustered == sum(c.size for c in na.clusters)
