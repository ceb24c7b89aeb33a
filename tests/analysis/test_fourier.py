"""Oracles for the Fourier toolkit: the basis, spectra, Gini, sum directions, restricted/excluded logits."""

from __future__ import annotations

import math

import pytest
import torch

from groklab.analysis.fourier import (
    basis_labels,
    cos_coefficients,
    cos_fraction,
    embedding_spectrum,
    excluded_logits,
    fourier_1d,
    fourier_2d,
    fourier_basis,
    freq_norms,
    frequencies,
    gini,
    logit_fourier_norms,
    n_freqs,
    project_sum,
    restricted_logits,
    sum_basis,
    sum_directions,
    trig_fve,
    unembed_spectrum,
)

D = torch.float64


def w(k: int, p: int) -> float:
    return 2 * math.pi * k / p


def cos_table(p: int, ks: dict[int, float], sign: int = 1) -> torch.Tensor:
    """L[a*p+b, c] = sum_k amp_k cos(w_k (a + sign*b - c)): [p*p, p]."""
    a, b, c = torch.meshgrid(*(torch.arange(p, dtype=D),) * 3, indexing="ij")
    L = sum(amp * torch.cos(w(k, p) * (a + sign * b - c)) for k, amp in ks.items())
    return L.reshape(p * p, p)


@pytest.mark.parametrize("p", [2, 3, 7, 8, 13, 16, 31])
def test_basis_is_orthonormal_for_odd_and_even_p(p):
    F = fourier_basis(p)
    assert F.shape == (p, p) and F.dtype == D
    torch.testing.assert_close(F @ F.T, torch.eye(p, dtype=D))
    assert len(basis_labels(p)) == p


@pytest.mark.parametrize("p", [7, 8, 13])
def test_basis_rows_are_the_documented_functions(p):
    F, x = fourier_basis(p), torch.arange(p, dtype=D)
    torch.testing.assert_close(F[0], torch.full((p,), 1 / math.sqrt(p), dtype=D))
    for k in frequencies(p):
        c, s = torch.cos(w(k, p) * x), torch.sin(w(k, p) * x)
        torch.testing.assert_close(F[2 * k - 1], c / c.norm())
        torch.testing.assert_close(F[2 * k], s / s.norm())
        assert basis_labels(p)[2 * k - 1] == f"cos {k}" and basis_labels(p)[2 * k] == f"sin {k}"
    if p % 2 == 0:
        torch.testing.assert_close(F[-1], torch.cos(math.pi * x) / math.sqrt(p))
        assert basis_labels(p)[-1] == f"cos {p // 2}"


@pytest.mark.parametrize("p", [7, 8, 113])
def test_frequencies_never_list_k_and_p_minus_k(p):
    ks = frequencies(p)
    assert ks == list(range(1, (p - 1) // 2 + 1)) and n_freqs(p) == len(ks)
    assert not any(p - k in ks for k in ks)


def test_transforms_match_matrix_products_and_invert():
    p = 11
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(p, 4, dtype=D, generator=gen)
    F = fourier_basis(p)
    torch.testing.assert_close(fourier_1d(x, 0), F @ x)
    torch.testing.assert_close(fourier_1d(x.T, 1), (F @ x).T)
    T = torch.randn(p, p, 3, dtype=D, generator=gen)
    C = fourier_2d(T)
    for i in range(3):
        torch.testing.assert_close(C[:, :, i], F @ T[:, :, i] @ F.T)
    torch.testing.assert_close(torch.einsum("ia,ij...,jb->ab...", F, C, F), T)


@pytest.mark.parametrize("p", [13, 14])
def test_embedding_spectrum_merges_cos_and_sin_and_folds_p_minus_k(p):
    x = torch.arange(p, dtype=D)
    W_E = torch.zeros(p, 5, dtype=D)
    W_E[:, 0] = 2.0 * torch.cos(w(2, p) * x + 0.3)  # frequency 2, any phase
    W_E[:, 1] = 1.0 * torch.sin(w(p - 5, p) * x)  # frequency p-5 is frequency 5
    W_E[:, 2] = 7.0  # the constant belongs to no frequency
    if p % 2 == 0:
        W_E[:, 3] = torch.cos(math.pi * x)  # neither does cos(pi x)
    spec = embedding_spectrum(W_E)
    assert spec.shape == (n_freqs(p),)
    expected = torch.zeros(n_freqs(p), dtype=D)
    expected[2 - 1] = 2.0 * math.sqrt(p / 2)
    expected[5 - 1] = 1.0 * math.sqrt(p / 2)
    torch.testing.assert_close(spec, expected)
    # the same norms over the answer axis of W_L [d_mlp, p]
    torch.testing.assert_close(unembed_spectrum(W_E.T), expected)
    torch.testing.assert_close(freq_norms(fourier_1d(W_E, 0), 0), expected)


def test_gini_on_known_vectors():
    assert gini(torch.ones(10)) == pytest.approx(0.0, abs=1e-12)
    for n in (1, 2, 5, 56):
        one_hot = torch.zeros(n)
        one_hot[n // 2] = 3.0
        assert gini(one_hot) == pytest.approx(1 - 1 / n)
    assert gini([0, 0, 1, 1]) == pytest.approx(0.5)  # m equal entries of N: 1 - m/N
    assert gini([0, 0, 0, 1, 1, 1, 1, 1]) == pytest.approx(1 - 5 / 8)
    # N=3, sorted (1, 2, 3): 1 - 2 * (1/6 * 2.5 + 2/6 * 1.5 + 3/6 * 0.5) / 3 = 2/9
    assert gini([3.0, 1.0, 2.0]) == pytest.approx(2 / 9)
    x = torch.rand(20, generator=torch.Generator().manual_seed(1))
    assert gini(x) == pytest.approx(gini(5 * x[torch.randperm(20)]))  # scale and order free
    assert math.isnan(gini(torch.zeros(4)))
    with pytest.raises(ValueError):
        gini([1.0, -1.0])


@pytest.mark.parametrize(("p", "additive"), [(13, "a+b"), (13, "a-b"), (12, "a+b")])
def test_sum_directions_are_orthonormal_and_follow_the_sum(p, additive):
    U = sum_basis(p, frequencies(p), additive)
    assert U.shape == (p * p, 2 * n_freqs(p))
    torch.testing.assert_close(U.T @ U, torch.eye(U.shape[1], dtype=D))
    torch.testing.assert_close(U.sum(0), torch.zeros(U.shape[1], dtype=D))  # orthogonal to the constant
    u_cos, u_sin = sum_directions(p, 3, additive)
    a, b = torch.arange(p * p) // p, torch.arange(p * p) % p
    s = (a + b if additive == "a+b" else a - b).to(D)
    torch.testing.assert_close(u_cos, torch.cos(w(3, p) * s) / torch.cos(w(3, p) * s).norm())
    torch.testing.assert_close(u_sin, torch.sin(w(3, p) * s) / torch.sin(w(3, p) * s).norm())
    with pytest.raises(ValueError):
        sum_directions(p, (p + 1) // 2 + 1, additive)
    with pytest.raises(ValueError):
        sum_basis(p, [1], "a*b")


@pytest.mark.parametrize(("additive", "sign"), [("a+b", 1), ("a-b", -1)])
def test_synthetic_table_restricted_plus_excluded_is_original_plus_mean(additive, sign):
    p, K = 17, [2, 5]
    pure = cos_table(p, {2: 1.5, 5: 0.7}, sign)
    gen = torch.Generator().manual_seed(0)
    # plus parts the sum directions of K cannot see: single-token terms, another frequency of a+b,
    # a per-answer bias (the column mean)
    a = torch.arange(p * p) // p
    other = torch.outer(torch.cos(w(3, p) * a.to(D)), torch.randn(p, dtype=D, generator=gen))
    other = other + cos_table(p, {4: 0.9}, sign) + torch.randn(1, p, dtype=D, generator=gen)
    L = pure + other
    L_r, L_x = restricted_logits(L, p, K, additive), excluded_logits(L, p, K, additive)
    torch.testing.assert_close(L_r + L_x, L + L.mean(0, keepdim=True))
    torch.testing.assert_close(project_sum(L, p, K, additive), pure)  # P_K L is exactly the K part
    torch.testing.assert_close(L_r, pure + L.mean(0, keepdim=True))
    torch.testing.assert_close(project_sum(L_x, p, K, additive), torch.zeros_like(L))
    # dense P_K from the unit vectors, for this small p
    P_K = sum(torch.outer(u, u) for k in K for u in sum_directions(p, k, additive))
    torch.testing.assert_close(P_K @ L, pure)
    # trig FVE: the K part is all of `pure`, none of the other frequency
    assert trig_fve(pure, p, K, additive) == pytest.approx(1.0)
    assert trig_fve(cos_table(p, {4: 1.0}, sign), p, K, additive) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(trig_fve(torch.ones(p * p, 3), p, K, additive))


@pytest.mark.parametrize(("additive", "sign"), [("a+b", 1), ("a-b", -1)])
def test_cos_coefficients_match_the_definition(additive, sign):
    p = 11
    gen = torch.Generator().manual_seed(2)
    L = torch.randn(p * p, p, dtype=D, generator=gen) + cos_table(p, {3: 2.0}, sign)
    a, b, c = torch.meshgrid(*(torch.arange(p, dtype=D),) * 3, indexing="ij")
    ks = [4, 1, 3]
    brute = []
    for k in ks:
        C = torch.cos(w(k, p) * (a + sign * b - c)).reshape(p * p, p)
        brute.append((L * C).sum() / C.norm())
    torch.testing.assert_close(cos_coefficients(L, p, ks, additive), torch.stack(brute))
    # row centring does not change the coefficients
    torch.testing.assert_close(cos_coefficients(L - L.mean(1, keepdim=True), p, ks, additive), torch.stack(brute))
    Lc = L - L.mean(1, keepdim=True)
    frac = sum(x**2 for x in brute[:1] + brute[2:]) / Lc.pow(2).sum()
    assert cos_fraction(L, p, [4, 3], additive) == pytest.approx(float(frac))


def test_pure_cos_table_is_all_explained_and_concentrated():
    p, k = 23, 6
    L = cos_table(p, {k: 3.0}) + 0.5  # a constant offset is centred away
    assert cos_fraction(L, p, [k]) == pytest.approx(1.0)
    assert cos_fraction(L, p, [k + 1]) == pytest.approx(0.0, abs=1e-12)
    coef = cos_coefficients(L, p, frequencies(p))
    assert int(coef.abs().argmax()) + 1 == k
    # the unembedding of such a model: W_L rows cos(w_k c + phase): Gini of its spectrum = 1 - 1/N
    W_L = torch.stack([torch.cos(w(k, p) * torch.arange(p, dtype=D) + ph) for ph in torch.rand(9).tolist()])
    assert gini(unembed_spectrum(W_L)) == pytest.approx(1 - 1 / n_freqs(p))
    # 2-D Fourier norms: only the (cos k, sin k) x (cos k, sin k) block and nothing else but (0, 0)
    norms = logit_fourier_norms(L, p)
    block = [2 * k - 1, 2 * k]
    mask = torch.zeros(p, p, dtype=torch.bool)
    mask[block[0] : block[1] + 1, block[0] : block[1] + 1] = True
    mask[0, 0] = True
    assert norms[~mask].abs().max() < 1e-9
    assert norms[mask].sum() > 1
