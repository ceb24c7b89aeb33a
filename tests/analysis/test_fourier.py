"""Oracles for the Fourier toolkit: the basis, spectra, Gini, sum directions, restricted/excluded logits."""

from __future__ import annotations

import math

import pytest
import torch

from groklab.analysis.basis import Basis, basis_of
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
    freq_rows,
    frequencies,
    gini,
    logit_fourier_norms,
    n_freqs,
    project_sum,
    remove_frequencies,
    restricted_logits,
    trig_fve,
    unembed_spectrum,
)
from groklab.data import make_dataset

D = torch.float64


def ident(p: int, op: str = "add") -> Basis:
    """The basis of add (identity, n = p) or sub (negate_b): every pair analysed, a-major."""
    return basis_of(make_dataset(op, p))


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
    for k in range(1, (p - 1) // 2 + 1):
        c, s = torch.cos(w(k, p) * x), torch.sin(w(k, p) * x)
        assert freq_rows(k, p) == (2 * k - 1, 2 * k)
        torch.testing.assert_close(F[2 * k - 1], c / c.norm())
        torch.testing.assert_close(F[2 * k], s / s.norm())
        assert basis_labels(p)[2 * k - 1] == f"cos {k}" and basis_labels(p)[2 * k] == f"sin {k}"
    if p % 2 == 0:  # the cos-only frequency n/2: one row
        torch.testing.assert_close(F[-1], torch.cos(math.pi * x) / math.sqrt(p))
        assert basis_labels(p)[-1] == f"cos {p // 2}" and freq_rows(p // 2, p) == (p - 1,)


@pytest.mark.parametrize("n", [7, 8, 112, 113])
def test_frequencies_never_list_k_and_n_minus_k(n):
    ks = frequencies(n)
    assert ks == list(range(1, n // 2 + 1)) and n_freqs(n) == len(ks)
    assert not any(n - k in ks for k in ks if 2 * k != n)
    assert (2 * ks[-1] == n) == (n % 2 == 0)  # even n: the cos-only k = n/2 is the last frequency


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
        W_E[:, 3] = 3.0 * torch.cos(math.pi * x)  # the cos-only frequency p/2, one row
    spec = embedding_spectrum(W_E, ident(p))
    assert spec.shape == (n_freqs(p),)
    expected = torch.zeros(n_freqs(p), dtype=D)
    expected[2 - 1] = 2.0 * math.sqrt(p / 2)
    expected[5 - 1] = 1.0 * math.sqrt(p / 2)
    if p % 2 == 0:
        expected[p // 2 - 1] = 3.0 * math.sqrt(p)
    torch.testing.assert_close(spec, expected)
    # the same norms over the answer axis of W_L [d_mlp, p]
    torch.testing.assert_close(unembed_spectrum(W_E.T, ident(p)), expected)
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


@pytest.mark.parametrize(("p", "op"), [(13, "add"), (13, "sub"), (12, "add"), (13, "mul"), (13, "div")])
def test_sum_directions_are_orthonormal_and_follow_the_sum(p, op):
    basis = basis_of(make_dataset(op, p))
    U = basis.sum_basis(basis.frequencies)
    n = basis.n
    assert U.shape == (len(basis.rows), n - 1)  # 2 per frequency, 1 for the cos-only n/2 of even n
    torch.testing.assert_close(U.T @ U, torch.eye(U.shape[1], dtype=D))
    torch.testing.assert_close(U.sum(0), torch.zeros(U.shape[1], dtype=D))  # orthogonal to the constant
    # the span of frequency 3 is cos/sin(w_3 s), s = phi_a(a) + phi_b(b): both lie in it
    s = basis.s.to(D)
    U3 = basis.sum_basis([3])
    for f in (torch.cos(2 * math.pi * 3 / n * s), torch.sin(2 * math.pi * 3 / n * s)):
        torch.testing.assert_close(U3 @ (U3.T @ f), f)
    with pytest.raises(ValueError):
        basis.sum_basis([n // 2 + 1])


def test_discrete_log_basis_places_the_group():
    p = 13  # 2 is the smallest primitive root of 13
    basis = basis_of(make_dataset("mul", p))
    assert (basis.kind, basis.n, basis.map.generator) == ("discrete_log", 12, 2)
    assert len(basis.rows) == 12 * 12 and basis.table_reason is None  # the zero row and column left out
    assert [pow(2, j, p) for j in range(12)] == basis.token_order.tolist()
    ds = make_dataset("mul", p)
    a, b, c = (ds.tokens[basis.rows, 0], ds.tokens[basis.rows, 1], ds.labels[basis.rows])
    assert torch.equal(basis.class_order[basis.s], c)  # phi_c(a b) = phi_a(a) + phi_b(b)
    assert torch.equal(basis.token_order[basis.ia], a) and torch.equal(basis.token_order[basis.ib], b)
    div = basis_of(make_dataset("div", p))
    assert div.kind == "discrete_log_div" and len(div.rows) == 12 * 12
    assert basis_of(make_dataset("mul", 15)).reason is not None  # composite p: no discrete log
    sq = basis_of(make_dataset("x2+y2", p))
    assert sq.pair_reason is None and "not one-to-one" in sq.token_reason
    none = basis_of(make_dataset("x3+xy", p))
    assert none.kind == "none" and none.pair_reason and none.record().reason


def test_non_injective_map_projects_with_qr():
    p = 11
    basis = basis_of(make_dataset("x2+y2", p))  # a^2 + b^2 is not uniform over pairs
    U = basis.sum_basis([2, 3])
    torch.testing.assert_close(U.T @ U, torch.eye(U.shape[1], dtype=D))
    s = basis.s.to(D)
    f = torch.cos(2 * math.pi * 2 / p * s)
    f = f - f.mean()
    torch.testing.assert_close(U @ (U.T @ f), f)  # the true projector keeps its own directions


@pytest.mark.parametrize(("op", "sign"), [("add", 1), ("sub", -1)])
def test_synthetic_table_restricted_plus_excluded_is_original_plus_mean(op, sign):
    p, K = 17, [2, 5]
    basis = ident(p, op)
    pure = cos_table(p, {2: 1.5, 5: 0.7}, sign)
    gen = torch.Generator().manual_seed(0)
    # plus parts the sum directions of K cannot see: single-token terms, another frequency of a+b,
    # a per-answer bias (the column mean)
    a = torch.arange(p * p) // p
    other = torch.outer(torch.cos(w(3, p) * a.to(D)), torch.randn(p, dtype=D, generator=gen))
    other = other + cos_table(p, {4: 0.9}, sign) + torch.randn(1, p, dtype=D, generator=gen)
    L = pure + other
    L_r, L_x = restricted_logits(L, basis, K), excluded_logits(L, basis, K)
    torch.testing.assert_close(L_r + L_x, L + L.mean(0, keepdim=True))
    torch.testing.assert_close(project_sum(L, basis, K), pure)  # P_K L is exactly the K part
    torch.testing.assert_close(L_r, pure + L.mean(0, keepdim=True))
    torch.testing.assert_close(project_sum(L_x, basis, K), torch.zeros_like(L))
    # dense P_K from the unit vectors cos/sin(w_k s) / norm, for this small p
    idx = torch.arange(p * p)
    s_ = (idx // p + sign * (idx % p)).to(D)
    units = [f / f.norm() for k in K for f in (torch.cos(w(k, p) * s_), torch.sin(w(k, p) * s_))]
    P_K = sum(torch.outer(u, u) for u in units)
    torch.testing.assert_close(P_K @ L, pure)
    # trig FVE: the K part is all of `pure`, none of the other frequency
    assert trig_fve(pure, basis, K) == pytest.approx(1.0)
    assert trig_fve(cos_table(p, {4: 1.0}, sign), basis, K) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(trig_fve(torch.ones(p * p, 3), basis, K))
    # pre-activations f(a) + g(b) at a key frequency: invisible to P_K, all seen by the single-variable directions
    a_, b_ = (idx // p).to(D), (idx % p).to(D)
    pre = torch.stack([torch.cos(w(2, p) * a_ + 0.4) + torch.sin(w(5, p) * sign * b_), torch.cos(w(5, p) * a_)], 1)
    assert trig_fve(pre, basis, K) == pytest.approx(0.0, abs=1e-12)
    assert trig_fve(pre, basis, K, single=True) == pytest.approx(1.0)
    assert trig_fve(pre, basis, [3], single=True) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("op", "sign"), [("add", 1), ("sub", -1)])
def test_cos_coefficients_match_the_definition(op, sign):
    p = 11
    basis = ident(p, op)
    gen = torch.Generator().manual_seed(2)
    L = torch.randn(p * p, p, dtype=D, generator=gen) + cos_table(p, {3: 2.0}, sign)
    a, b, c = torch.meshgrid(*(torch.arange(p, dtype=D),) * 3, indexing="ij")
    ks = [4, 1, 3]
    brute = []
    for k in ks:
        C = torch.cos(w(k, p) * (a + sign * b - c)).reshape(p * p, p)
        brute.append((L * C).sum() / C.norm())
    torch.testing.assert_close(cos_coefficients(L, basis, ks), torch.stack(brute))
    # row centring does not change the coefficients
    torch.testing.assert_close(cos_coefficients(L - L.mean(1, keepdim=True), basis, ks), torch.stack(brute))
    Lc = L - L.mean(1, keepdim=True)
    frac = sum(x**2 for x in brute[:1] + brute[2:]) / Lc.pow(2).sum()
    assert cos_fraction(L, basis, [4, 3]) == pytest.approx(float(frac))


def test_pure_cos_table_is_all_explained_and_concentrated():
    p, k = 23, 6
    basis = ident(p)
    L = cos_table(p, {k: 3.0}) + 0.5  # a constant offset is centred away
    assert cos_fraction(L, basis, [k]) == pytest.approx(1.0)
    assert cos_fraction(L, basis, [k + 1]) == pytest.approx(0.0, abs=1e-12)
    coef = cos_coefficients(L, basis, frequencies(p))
    assert int(coef.abs().argmax()) + 1 == k
    # the unembedding of such a model: W_L rows cos(w_k c + phase): Gini of its spectrum = 1 - 1/N
    W_L = torch.stack([torch.cos(w(k, p) * torch.arange(p, dtype=D) + ph) for ph in torch.rand(9).tolist()])
    assert gini(unembed_spectrum(W_L, basis)) == pytest.approx(1 - 1 / n_freqs(p))
    # 2-D Fourier norms: only the (cos k, sin k) x (cos k, sin k) block and nothing else but (0, 0)
    norms = logit_fourier_norms(L, basis)
    block = [2 * k - 1, 2 * k]
    mask = torch.zeros(p, p, dtype=torch.bool)
    mask[block[0] : block[1] + 1, block[0] : block[1] + 1] = True
    mask[0, 0] = True
    assert norms[~mask].abs().max() < 1e-9
    assert norms[mask].sum() > 1


def test_remove_frequencies_in_discrete_log_coordinates():
    p = 13
    basis = basis_of(make_dataset("mul", p))
    dlog = torch.zeros(p, dtype=D)
    dlog[basis.token_order] = torch.arange(basis.n, dtype=D)
    W = torch.zeros(p, 4, dtype=D)
    W[1:, 0] = torch.cos(2 * math.pi * 2 / 12 * dlog[1:])  # frequency 2 of Z_12 in dlog order
    W[1:, 1] = torch.cos(math.pi * dlog[1:])  # the cos-only k = 6: the Legendre symbol
    W[1:, 2] = torch.sin(2 * math.pi * 5 / 12 * dlog[1:])
    W[0] = 9.0  # token 0 lies outside the group: never touched
    spec = embedding_spectrum(W, basis)
    assert torch.nonzero(spec > 1e-9).flatten().add(1).tolist() == [2, 5, 6]
    out = remove_frequencies(W, [2, 6], basis)
    torch.testing.assert_close(out[:, 0], torch.tensor([9.0] + [0.0] * 12, dtype=D))
    torch.testing.assert_close(out[:, 1], torch.tensor([9.0] + [0.0] * 12, dtype=D))
    torch.testing.assert_close(out[:, 2:], W[:, 2:])
