"""The Fourier toolkit over Z_n: basis, transforms, spectra, sum directions and the losses built on them.

Conventions (DESIGN section 6), shared by every function here:

- Every measure works in the task's own coordinates, a :class:`~groklab.analysis.basis.Basis`
  (phi_a, phi_b, phi_c into Z_n; the identity with n = p for add). Tables over pairs are
  ``[N, ...]`` over the basis's analysed pairs (``basis.rows`` of the dataset); a logit table is
  ``[N, p]`` (pairs x every answer class).
- ``F = fourier_basis(n)`` is ``[n, n]``, orthonormal, one basis function per row: row 0 is the
  constant; for k = 1..(n-1)//2 row ``2k-1`` is cos(w_k x) and row ``2k`` is sin(w_k x), with
  w_k = 2 pi k / n; for even n the last row is cos(pi x), the cos-only frequency k = n/2.
  A 1-D transform is ``F @ x``; the 2-D transform of a table ``T[i, j, ...]`` is ``F @ T @ F^T``.
- Frequencies are k = 1..n//2. k and n-k are the same frequency and are never listed twice.
- The sum directions of frequency k span cos(w_k s) and sin(w_k s) over the analysed pairs, with
  s = phi_a(a) + phi_b(b); P_K projects onto them for k in K (constant removed).

Everything is computed in float64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from groklab.analysis.basis import Basis

__all__ = [
    "basis_labels",
    "cos_coefficients",
    "cos_fraction",
    "embedding_spectrum",
    "excluded_logits",
    "fourier_1d",
    "fourier_2d",
    "fourier_basis",
    "freq_norms",
    "freq_rows",
    "frequencies",
    "gini",
    "logit_fourier_norms",
    "n_freqs",
    "project_sum",
    "remove_frequencies",
    "restricted_logits",
    "trig_fve",
    "unembed_spectrum",
]

DTYPE = torch.float64


def n_freqs(n: int) -> int:
    """Number of frequencies of Z_n, n//2 (for even n the last is the cos-only k = n/2)."""
    return n // 2


def frequencies(n: int) -> list[int]:
    """The frequencies k = 1..n//2 of Z_n (k and n-k are one frequency, listed once as the smaller)."""
    return list(range(1, n_freqs(n) + 1))


def freq_rows(k: int, n: int | None = None) -> tuple[int, ...]:
    """Rows of ``F`` (size n) holding frequency k: (cos row 2k-1, sin row 2k), or (n-1,) for the
    cos-only k = n/2 of an even n."""
    return (n - 1,) if n is not None and 2 * k == n else (2 * k - 1, 2 * k)


def fourier_basis(n: int, device: torch.device | str | None = None) -> Tensor:
    """The orthonormal real Fourier basis ``F`` [n, n] (float64), one basis function per row.

    Row 0: 1/sqrt(n); row 2k-1: cos(w_k x) and row 2k: sin(w_k x), each scaled to unit norm, for
    k = 1..(n-1)//2; for even n, row n-1: cos(pi x)/sqrt(n). ``F @ F.T == I``. The result is
    cached and shared: do not modify it in place.
    """
    return _fourier_basis(n).to(device)


@functools.lru_cache(maxsize=8)
def _fourier_basis(n: int) -> Tensor:
    x = torch.arange(n, dtype=DTYPE)
    rows = [torch.ones(n, dtype=DTYPE)]
    for k in range(1, (n - 1) // 2 + 1):
        w = 2 * math.pi * k / n
        rows += [torch.cos(w * x), torch.sin(w * x)]
    if n % 2 == 0:
        rows.append(torch.cos(math.pi * x))
    F = torch.stack(rows)
    return F / F.norm(dim=1, keepdim=True)


def basis_labels(n: int) -> list[str]:
    """Names of the rows of ``F``: "const", "cos 1", "sin 1", ..., and "cos n/2" for even n."""
    names = ["const"]
    for k in frequencies(n):
        names += [f"cos {k}"] if 2 * k == n else [f"cos {k}", f"sin {k}"]
    return names


def fourier_1d(x: Tensor, dim: int = 0) -> Tensor:
    """``F @ x`` along ``dim`` (size n): coefficients in basis order, float64, same shape as x."""
    x = x.to(DTYPE)
    F = fourier_basis(x.shape[dim], x.device)
    return torch.movedim(torch.tensordot(F, torch.movedim(x, dim, 0), dims=1), 0, dim)


def fourier_2d(T: Tensor) -> Tensor:
    """``F @ T @ F^T`` over the first two axes of ``T [n, n, ...]``; float64, same shape."""
    T = T.to(DTYPE)
    p = T.shape[0]
    if T.shape[1] != p:
        raise ValueError(f"fourier_2d: expected a [p, p, ...] table, got {tuple(T.shape)}")
    F = fourier_basis(p, T.device)
    return torch.einsum("ia,ab...,jb->ij...", F, T, F)


def freq_norms(coeffs: Tensor, dim: int = 0) -> Tensor:
    """Per-frequency norms [n//2] of coefficients in basis order along ``dim`` (size n).

    Frequency k's norm merges its cos and sin rows and every other axis: sqrt(sum of squares of
    rows 2k-1 and 2k); the cos-only k = n/2 of an even n is its one row. The constant is excluded.
    """
    c = torch.movedim(coeffs.to(DTYPE), dim, 0)
    n = c.shape[0]
    sq = c.pow(2).reshape(n, -1).sum(1)
    m = (n - 1) // 2
    pairs = sq[1 : 2 * m : 2] + sq[2 : 2 * m + 1 : 2]
    return (torch.cat([pairs, sq[n - 1 :]]) if n % 2 == 0 else pairs).sqrt()


def embedding_spectrum(W_E_tokens: Tensor, basis: Basis) -> Tensor:
    """Embedding spectrum [n//2]: norm of frequency k of the rows of ``F @ W_E`` with token t's row
    at phi(t) (``basis.token_order``; the `=` row and tokens outside the map left out). Entry k-1 is
    frequency k. Needs a one-to-one map (``basis.token_reason`` is None)."""
    return freq_norms(fourier_1d(W_E_tokens[basis.token_order.to(W_E_tokens.device)], 0), 0)


def unembed_spectrum(W_L: Tensor, basis: Basis) -> Tensor:
    """Spectrum [n//2] of ``W_L [d_mlp, p]`` transformed over its output axis, answer class c at
    phi_c(c) (classes outside the map, such as 0 for mul, left out). Entry k-1 is sqrt(sum over
    neurons of the squared cos-k and sin-k coefficients)."""
    return freq_norms(fourier_1d(W_L[:, basis.class_order.to(W_L.device)], 1), 1)


def logit_fourier_norms(logits: Tensor, basis: Basis) -> Tensor:
    """2-D Fourier norms [n, n] of a logit table ``[N, p]`` over the analysed pairs, placed at
    (phi_a(a), phi_b(b)): entry (i, j) is the norm over answers c of the (i, j) coefficient of
    ``F @ L[:, :, c] @ F^T`` (rows/columns in basis order). No centring: (0, 0) holds the mean.
    Needs ``basis.table_reason`` None."""
    return fourier_2d(basis.table(logits.to(DTYPE))).norm(dim=-1)


def remove_frequencies(W_E_tokens: Tensor, ks: Sequence[int], basis: Basis) -> Tensor:
    """``W_E_tokens [p, d]`` with frequencies ``ks`` projected out of every column, in phi coordinates:
    over the rows of tokens in the map's domain (placed at phi(t)), W - F_K^T F_K W with F_K the cos
    and sin rows of ``ks``. Other tokens' rows, the constant and every other frequency are untouched."""
    order = basis.token_order.to(W_E_tokens.device)
    F = fourier_basis(basis.n, W_E_tokens.device)
    Fk = F[[r for k in ks for r in freq_rows(int(k), basis.n)]]  # [|rows of K|, n]
    W = W_E_tokens.to(DTYPE)
    out = W.clone()
    out[order] = W[order] - Fk.T @ (Fk @ W[order])
    return out.to(W_E_tokens.dtype)


def gini(x: Tensor | Sequence[float]) -> float:
    """Hurley-Rickard Gini of non-negative ``x`` [N]: 0 = spread evenly, 1 - 1/N = one-hot.

    With x sorted ascending (i = 1..N): G = 1 - 2 * sum_i (x_(i) / |x|_1) * (N - i + 1/2) / N.
    An all-zero vector has no defined Gini: NaN.
    """
    v = torch.as_tensor(x, dtype=DTYPE).flatten()
    if (v < 0).any():
        raise ValueError("gini: entries must be non-negative")
    total = v.sum()
    if v.numel() == 0 or total == 0:
        return float("nan")
    n = v.numel()
    i = torch.arange(1, n + 1, dtype=DTYPE)
    return float(1 - 2 * ((v.sort().values / total) * (n - i + 0.5) / n).sum())


def project_sum(X: Tensor, basis: Basis, ks: Sequence[int]) -> Tensor:
    """P_K X for ``X [N, ...]`` over the analysed pairs: the part of X along the sum directions of ``ks``."""
    U = basis.sum_basis(ks).to(X.device)
    flat = X.to(DTYPE).reshape(X.shape[0], -1)
    return (U @ (U.T @ flat)).reshape(X.shape)


def restricted_logits(logits: Tensor, basis: Basis, ks: Sequence[int]) -> Tensor:
    """L_r = P_K L + (column means of L) broadcast over the analysed pairs: [N, p], float64."""
    L = logits.to(DTYPE)
    return project_sum(L, basis, ks) + L.mean(0, keepdim=True)


def excluded_logits(logits: Tensor, basis: Basis, ks: Sequence[int]) -> Tensor:
    """L_x = L - P_K L: [N, p], float64. ``restricted + excluded == L + column means``."""
    L = logits.to(DTYPE)
    return L - project_sum(L, basis, ks)


def trig_fve(T: Tensor, basis: Basis, ks: Sequence[int], single: bool = False) -> float:
    """||P T||^2 / ||T||^2 for ``T [N, m]`` centred over the analysed pairs (all m columns pooled).

    P projects onto the sum directions of ``ks`` (P_K), or with ``single`` onto their
    single-variable directions cos/sin(w_k phi_a(a)), cos/sin(w_k phi_b(b)): pre-activations are
    close to f(a) + g(b), orthogonal to every sum direction, so they are measured there. Computed in
    T's floating dtype. NaN when T is constant over the pairs.
    """
    T = T.reshape(T.shape[0], -1)
    if not T.is_floating_point():
        T = T.to(DTYPE)
    total = (T - T.mean(0, keepdim=True)).pow(2).sum(0).to(DTYPE).sum()
    if total == 0:
        return float("nan")
    U = (basis.single_basis(ks) if single else basis.sum_basis(ks)).to(T.device, T.dtype)
    return float((U.T @ T).to(DTYPE).pow(2).sum() / total)


def cos_coefficients(logits: Tensor, basis: Basis, ks: Sequence[int]) -> Tensor:
    """<L, C_k> for k in ``ks`` (in the given order): [len(ks)], float64.

    C_k[pair, c] = cos(w_k (s - phi_c(c))) over the analysed pairs and the answer classes in the
    map's domain, normalised to unit norm. Row-centring L (per pair, over those classes) leaves
    these unchanged.
    """
    return _cos_coefficients(logits.to(DTYPE)[:, basis.class_order.to(logits.device)], basis, ks)


def _cos_coefficients(L: Tensor, basis: Basis, ks: Sequence[int]) -> Tensor:
    """cos_coefficients of ``L [N, n]`` whose columns are already in phi_c order."""
    s = basis.s.to(L.device)
    c = torch.arange(basis.n, device=L.device)
    out = []
    for k in ks:
        ws, wc = basis.waves(s, int(k)), basis.waves(c, int(k))  # [N, 2], [n, 2]
        # C = ws @ wc.T is cos(w(s - c)) = cos ws cos wc + sin ws sin wc [N, n], never formed:
        # <L, C> = sum_ij (ws^T L wc)_ii and ||C||^2 = sum_ij (ws^T ws)_ij (wc^T wc)_ij
        inner = ((ws.T @ L) * wc.T).sum()
        out.append(inner / ((ws.T @ ws) * (wc.T @ wc)).sum().sqrt())
    return torch.stack(out) if out else torch.zeros(0, dtype=DTYPE)


def cos_fraction(logits: Tensor, basis: Basis, ks: Sequence[int]) -> float:
    """Fraction of logit norm explained by cos(w_k(s - phi_c(c))), k in ``ks``: sum_k <L, C_k>^2 /
    ||L||^2, L over the analysed pairs and the map's classes, centred per pair first. NaN for a
    constant table. (The C_k of different k are orthogonal: c runs over all of Z_n.)"""
    L = logits.to(DTYPE)[:, basis.class_order.to(logits.device)]
    L = L - L.mean(1, keepdim=True)
    total = L.pow(2).sum()
    if total == 0:
        return float("nan")
    return float(_cos_coefficients(L, basis, sorted(set(ks))).pow(2).sum() / total)
