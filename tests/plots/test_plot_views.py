"""Oracles for groklab.analysis.views: inputs built so the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from groklab.analysis.views import (
    attention_patterns,
    cosine_similarity,
    embedding_pca,
    first_stable_index,
    frequency_plane,
    main_matrices,
    parameter_norms,
    pick_steps,
    representative_neurons,
)
from groklab.config import ModelConfig
from groklab.models import MLPModel, Transformer

P = 13


def _basis(op: str = "add", p: int = P):
    from groklab.analysis.basis import basis_of
    from groklab.data import make_dataset

    return basis_of(make_dataset(op, p))


def _orthonormal(d: int, n: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.T  # [n, d]


def test_frequency_plane_recovers_a_planted_circle():
    """W[x] = 2 cos(w3 x) u + 2 sin(w3 x) v + 5 cos(w1 x) e: in frequency 3's plane token x sits
    at (2 cos(w3 x), 2 sin(w3 x)); in frequency 1's plane on a line (its sin part is zero)."""
    x = torch.arange(P, dtype=torch.float64)
    u, v, e = _orthonormal(8, 3)
    w3, w1 = 2 * math.pi * 3 / P, 2 * math.pi / P
    W = 2 * torch.cos(w3 * x)[:, None] * u + 2 * torch.sin(w3 * x)[:, None] * v + 5 * torch.cos(w1 * x)[:, None] * e
    basis = _basis()
    xy = frequency_plane(W, 3, basis)
    torch.testing.assert_close(xy, torch.stack([2 * torch.cos(w3 * x), 2 * torch.sin(w3 * x)], 1))
    line = frequency_plane(W, 1, basis)
    torch.testing.assert_close(line[:, 0], 5 * torch.cos(w1 * x))
    torch.testing.assert_close(line[:, 1], torch.zeros(P, dtype=torch.float64))
    assert frequency_plane(torch.zeros(P, 4), 2, basis).abs().sum() == 0  # no structure at all: zeros, no NaN


def test_frequency_plane_of_mul_places_tokens_at_their_discrete_log():
    """mul mod 13 (n = 12, generator 2): W[t] = cos/sin(w_k log_2 t) in two directions puts token t at
    angle w_k log_2 t; token 0 is outside the group (NaN); k = 6 = n/2 is cos-only (a line)."""
    from groklab.data import discrete_log

    basis = _basis("mul")
    assert (basis.n, basis.map.generator) == (12, 2)
    log = torch.from_numpy(discrete_log(P)).to(torch.float64)
    u, v, e = _orthonormal(6, 3, seed=2)
    w = 2 * math.pi * 5 / 12
    W = torch.cos(w * log)[:, None] * u + torch.sin(w * log)[:, None] * v + 3 * torch.cos(math.pi * log)[:, None] * e
    W[0] = 9.0  # token 0: no place in Z_12, ignored
    xy = frequency_plane(W, 5, basis)
    assert torch.isnan(xy[0]).all()
    torch.testing.assert_close(xy[1:], torch.stack([torch.cos(w * log[1:]), torch.sin(w * log[1:])], 1))
    legendre = frequency_plane(W, 6, basis)
    torch.testing.assert_close(legendre[1:, 0], 3 * torch.cos(math.pi * log[1:]))
    assert legendre[1:, 1].abs().max() == 0


def test_embedding_pca_finds_the_circle_plane():
    x = torch.arange(P, dtype=torch.float64)
    u, v, e = _orthonormal(6, 3, seed=1)
    w = 2 * math.pi * 2 / P
    W = 3 * torch.cos(w * x)[:, None] * u + 3 * torch.sin(w * x)[:, None] * v + 0.1 * torch.cos(3 * w * x)[:, None] * e
    coords, frac = embedding_pca(W, 3)
    assert frac[:2].sum() > 0.99 and frac[0] >= frac[1] >= frac[2]
    r = coords[:, :2].norm(dim=1)
    torch.testing.assert_close(r, torch.full_like(r, 3.0), atol=1e-9, rtol=0)


def test_cosine_similarity_of_a_circle_depends_on_x_minus_y():
    x = torch.arange(P, dtype=torch.float64)
    w = 2 * math.pi * 4 / P
    S = cosine_similarity(torch.stack([torch.cos(w * x), torch.sin(w * x)], 1))
    expected = torch.cos(w * (x[:, None] - x[None, :]))
    torch.testing.assert_close(S, expected)


def test_first_stable_index():
    v = np.array([[5.0, 0.1, 5.0], [0.1, 5.0, 5.0], [0.1, 0.1, 0.1], [0.1, 0.1, 5.0]])
    assert first_stable_index(v, 1.0).tolist() == [1, 2, 4]  # the last column ends above: T


def test_pick_steps_keeps_ends_and_requested_steps():
    steps = list(range(0, 1000, 10))
    got = pick_steps(steps, 6, [123, None, 777])
    assert len(got) == 6 and got[0] == 0 and got[-1] == 990 and {120, 780} <= set(got)
    assert pick_steps([1, 2, 3], 6) == [1, 2, 3]


def test_representative_neurons_are_the_top_scorers_of_each_cluster():
    from groklab.records import Agreement, Cluster, NeuronAnalysis

    rec = NeuronAnalysis(
        p=P, basis=_basis().record(), d_mlp=5, threshold=0.85, min_cluster_size=2, defined=True, reason=None,
        neuron_frequency=[2, 2, 5, 2, 1], neuron_score=[0.9, 0.95, 0.99, 0.86, 0.1], fve=[],
        clusters=[Cluster(2, 3, [0, 1, 3]), Cluster(5, 1, [2])], n_clustered=4, key_frequencies=[2],
        key_frequency_counts={2: 3}, key_frequencies_reason=None, embedding_norms=[], embedding_null=None,
        embedding_key_frequencies=[], embedding_reason=None, agreement=Agreement([], [2], [], 0.0, False),
    )  # fmt: skip
    assert representative_neurons(rec, 2) == [(2, 1, 0.95), (2, 0, 0.9), (5, 2, 0.99)]


def test_parameter_norms_and_main_matrices():
    cfg = ModelConfig(d_model=8, n_heads=2, d_head=4, d_mlp=16)
    model = Transformer(cfg, P)
    norms = parameter_norms(model.state_dict())
    assert norms["embed.W_E"] == pytest.approx(float(model.embed.W_E.detach().double().norm()))
    assert sum(v**2 for v in norms.values()) == pytest.approx(
        sum(float(p.detach().double().pow(2).sum()) for p in model.parameters())
    )
    mats = main_matrices(model)
    assert list(mats) == ["W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U"]
    assert mats["W_Q"].shape == (8, 2 * 4) and mats["W_O"].shape == (2 * 4, 8)
    torch.testing.assert_close(mats["W_Q"][:, 4:], model.blocks[0].attn.W_Q[1].detach())  # head 1 second
    mlp = MLPModel(ModelConfig(arch="mlp", d_embed=4, hidden=[10, 12]), P)
    assert list(main_matrices(mlp)) == ["W_E", "blocks.0.W_in", "blocks.1.W_in", "W_U"]


def test_attention_patterns_are_the_hooked_patterns():
    from groklab.data import make_dataset

    model = Transformer(ModelConfig(d_model=8, n_heads=2, d_head=4, d_mlp=16, n_layers=2), P)
    tokens = make_dataset("add", P).tokens
    pat = attention_patterns(model, tokens, batch=50)  # batches must not change the result
    assert pat.shape == (2, P * P, 2, 3, 3)
    torch.testing.assert_close(pat.sum(-1), torch.ones(2, P * P, 2, 3))
    assert pat[..., 0, 1:].abs().max() == 0  # causal: position a sees only itself
    _, cache = model.run_with_cache(tokens, names_filter=["blocks.1.attn.hook_pattern"])
    torch.testing.assert_close(pat[1], cache["blocks.1.attn.hook_pattern"])
