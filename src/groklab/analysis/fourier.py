"""The Fourier toolkit over Z_p: basis, transforms, spectra, sum directions and the losses built on them.

Conventions (DESIGN section 6), shared by every function here:

- Inputs are pairs (a, b) in a-major order, index ``a * p + b``; a logit table ``L`` is
  ``[p*p, p]`` (inputs x answer classes c).
- ``F = fourier_basis(p)`` is ``[p, p]``, orthonormal, one basis function per row: row 0 is the
  constant; for k = 1..(p-1)//2 row ``2k-1`` is cos(w_k x) and row ``2k`` is sin(w_k x), with
  w_k = 2 pi k / p; for even p the last row is cos(pi x). A 1-D transform is ``F @ x``; the 2-D
  transform of a table ``T[a, b, ...]`` is ``F @ T @ F^T`` over the two input axes.
- Frequencies are k = 1..(p-1)//2. k and p-k are the same frequency and are never listed twice; the
  constant (k = 0) and, for even p, the cos(pi x) row belong to no frequency.
- "Additive" structure: ``"a+b"`` (add) or ``"a-b"`` (sub). The sum directions of frequency k are
  the unit vectors in R^{p*p} proportional to cos(w_k s) and sin(w_k s) with s = a+b (or a-b).

Everything is computed in float64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "ADDITIVE",
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
    "sum_basis",
    "sum_directions",
    "trig_fve",
    "unembed_spectrum",
]

ADDITIVE = ("a+b", "a-b")
DTYPE = torch.float64


def n_freqs(p: int) -> int:
    """Number of frequencies, (p-1)//2."""
    return (p - 1) // 2


def frequencies(p: int) -> list[int]:
    """The frequencies k = 1..(p-1)//2 (k and p-k are one frequency, listed once as the smaller)."""
    return list(range(1, n_freqs(p) + 1))


def freq_rows(k: int) -> tuple[int, int]:
    """Rows of ``F`` holding frequency k: (cos row 2k-1, sin row 2k)."""
    return 2 * k - 1, 2 * k


def fourier_basis(p: int, device: torch.device | str | None = None) -> Tensor:
    """The orthonormal real Fourier basis ``F`` [p, p] (float64), one basis function per row.

    Row 0: 1/sqrt(p); row 2k-1: cos(w_k x) and row 2k: sin(w_k x), each scaled to unit norm, for
    k = 1..(p-1)//2; for even p, row p-1: cos(pi x)/sqrt(p). ``F @ F.T == I``. The result is
    cached and shared: do not modify it in place.
    """
    return _fourier_basis(p).to(device)


@functools.lru_cache(maxsize=8)
def _fourier_basis(p: int) -> Tensor:
    x = torch.arange(p, dtype=DTYPE)
    rows = [torch.ones(p, dtype=DTYPE)]
    for k in frequencies(p):
        w = 2 * math.pi * k / p
        rows += [torch.cos(w * x), torch.sin(w * x)]
    if p % 2 == 0:
        rows.append(torch.cos(math.pi * x))
    F = torch.stack(rows)
    return F / F.norm(dim=1, keepdim=True)


def basis_labels(p: int) -> list[str]:
    """Names of the rows of ``F``: "const", "cos 1", "sin 1", ..., and "cos p/2" for even p."""
    names = ["const"]
    for k in frequencies(p):
        names += [f"cos {k}", f"sin {k}"]
    if p % 2 == 0:
        names.append(f"cos {p // 2}")
    return names


def fourier_1d(x: Tensor, dim: int = 0) -> Tensor:
    """``F @ x`` along ``dim`` (size p): coefficients in basis order, float64, same shape as x."""
    x = x.to(DTYPE)
    F = fourier_basis(x.shape[dim], x.device)
    return torch.movedim(torch.tensordot(F, torch.movedim(x, dim, 0), dims=1), 0, dim)


def fourier_2d(T: Tensor) -> Tensor:
    """``F @ T @ F^T`` over the first two axes of ``T [p, p, ...]`` (a, b); float64, same shape."""
    T = T.to(DTYPE)
    p = T.shape[0]
    if T.shape[1] != p:
        raise ValueError(f"fourier_2d: expected a [p, p, ...] table, got {tuple(T.shape)}")
    F = fourier_basis(p, T.device)
    return torch.einsum("ia,ab...,jb->ij...", F, T, F)


def freq_norms(coeffs: Tensor, dim: int = 0) -> Tensor:
    """Per-frequency norms [(p-1)//2] of coefficients in basis order along ``dim`` (size p).

    Frequency k's norm merges its cos and sin rows and every other axis:
    sqrt(sum of squares of rows 2k-1 and 2k). The constant (and cos(pi x) for even p) is excluded.
    """
    c = torch.movedim(coeffs.to(DTYPE), dim, 0)
    p = c.shape[0]
    sq = c.pow(2).reshape(p, -1).sum(1)
    nf = n_freqs(p)
    return (sq[1 : 2 * nf : 2] + sq[2 : 2 * nf + 1 : 2]).sqrt()


def embedding_spectrum(W_E_tokens: Tensor) -> Tensor:
    """Embedding spectrum [(p-1)//2]: norm of frequency k of the rows of ``F @ W_E[:p]``.

    ``W_E_tokens`` is [p, d_model] (the `=` row already dropped); entry k-1 is frequency k.
    """
    return freq_norms(fourier_1d(W_E_tokens, 0), 0)


def unembed_spectrum(W_L: Tensor) -> Tensor:
    """Spectrum [(p-1)//2] of ``W_L [d_mlp, p]`` transformed over its output axis (answers c).

    Entry k-1 is sqrt(sum over neurons of the squared cos-k and sin-k coefficients).
    """
    return freq_norms(fourier_1d(W_L, 1), 1)


def logit_fourier_norms(logits: Tensor, p: int) -> Tensor:
    """2-D Fourier norms [p, p] of a logit table ``[p*p, p]``.

    Entry (i, j) is the norm over answers c of the (i, j) coefficient of ``F @ L[:, :, c] @ F^T``
    (rows/columns in basis order, see ``basis_labels``). No centring: (0, 0) holds the mean.
    """
    return fourier_2d(logits.reshape(p, p, -1)).norm(dim=-1)


def remove_frequencies(W_E_tokens: Tensor, ks: Sequence[int]) -> Tensor:
    """``W_E_tokens [p, d]`` with frequencies ``ks`` projected out of every column: W - F_K^T F_K W,
    F_K the cos and sin rows of ``ks``. The constant and every other frequency are untouched."""
    F = fourier_basis(W_E_tokens.shape[0], W_E_tokens.device)
    Fk = F[[r for k in ks for r in freq_rows(int(k))]]  # [2|K|, p]
    W = W_E_tokens.to(DTYPE)
    return (W - Fk.T @ (Fk @ W)).to(W_E_tokens.dtype)


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


def _check_additive(additive: str) -> int:
    if additive not in ADDITIVE:
        raise ValueError(f"additive must be one of {ADDITIVE}, got {additive!r}")
    return 1 if additive == "a+b" else -1


def _sums(p: int, additive: str, device: torch.device | str | None = None) -> Tensor:
    """s = a + b (or a - b) for every input in a-major order: [p*p] float64."""
    sign = _check_additive(additive)
    idx = torch.arange(p * p, device=device)
    return (idx // p + sign * (idx % p)).to(DTYPE)


def sum_directions(p: int, k: int, additive: str = "a+b") -> tuple[Tensor, Tensor]:
    """(u_cos, u_sin), each [p*p] unit: proportional to cos(w_k s) and sin(w_k s), s = a+b or a-b."""
    if not 1 <= k <= n_freqs(p):
        raise ValueError(f"frequency {k} outside 1..{n_freqs(p)} for p = {p}")
    s = _sums(p, additive) * (2 * math.pi * k / p)
    c, si = torch.cos(s), torch.sin(s)
    return c / c.norm(), si / si.norm()


def sum_basis(p: int, ks: Sequence[int], additive: str = "a+b", device: torch.device | str | None = None) -> Tensor:
    """U [p*p, 2|K|] with orthonormal columns u_cos,k, u_sin,k for k in ascending ``ks``: P_K = U @ U^T.

    P_K itself is [p^2, p^2] (1.3 GB for p = 113), so it is applied through U (``project_sum``).
    The result is cached and shared: do not modify it in place.
    """
    return _sum_basis(p, tuple(sorted(set(int(k) for k in ks))), additive).to(device)


@functools.lru_cache(maxsize=64)
def _sum_basis(p: int, ks: tuple[int, ...], additive: str) -> Tensor:
    cols: list[Tensor] = []
    for k in ks:
        cols += sum_directions(p, k, additive)
    if not cols:
        return torch.zeros(p * p, 0, dtype=DTYPE)
    return torch.stack(cols, 1)


def project_sum(X: Tensor, p: int, ks: Sequence[int], additive: str = "a+b") -> Tensor:
    """P_K X for ``X [p*p, ...]`` (inputs first): the part of X along the sum directions of ``ks``."""
    U = sum_basis(p, ks, additive, X.device)
    flat = X.to(DTYPE).reshape(p * p, -1)
    return (U @ (U.T @ flat)).reshape(X.shape)


def restricted_logits(logits: Tensor, p: int, ks: Sequence[int], additive: str = "a+b") -> Tensor:
    """L_r = P_K L + (column means of L) broadcast over inputs: [p*p, p], float64."""
    L = logits.to(DTYPE)
    return project_sum(L, p, ks, additive) + L.mean(0, keepdim=True)


def excluded_logits(logits: Tensor, p: int, ks: Sequence[int], additive: str = "a+b") -> Tensor:
    """L_x = L - P_K L: [p*p, p], float64. ``restricted + excluded == L + column means``."""
    L = logits.to(DTYPE)
    return L - project_sum(L, p, ks, additive)


def trig_fve(T: Tensor, p: int, ks: Sequence[int], additive: str = "a+b") -> float:
    """||P_K T||^2 / ||T||^2 for ``T [p*p, n]`` centred over inputs (all n columns pooled).

    Computed in T's own floating dtype (float32 is precise enough for a ratio). NaN when T is
    constant over inputs. (The sum directions are orthogonal to the constant, so P_K T needs no
    centring.)
    """
    T = T.reshape(p * p, -1)
    if not T.is_floating_point():
        T = T.to(DTYPE)
    total = (T - T.mean(0, keepdim=True)).pow(2).sum(0).to(DTYPE).sum()
    if total == 0:
        return float("nan")
    U = sum_basis(p, ks, additive, T.device).to(T.dtype)
    return float((U.T @ T).to(DTYPE).pow(2).sum() / total)


def cos_coefficients(logits: Tensor, p: int, ks: Sequence[int], additive: str = "a+b") -> Tensor:
    """<L, C_k> for k in ``ks`` (in the given order): [len(ks)], float64.

    C_k[a, b, c] = cos(w_k (s - c)) with s = a+b (or a-b), normalised to unit norm over all p^3
    entries. Row-centring L (per input) leaves these unchanged. Computed through the sum
    directions: <L, C_k> = ((u_cos,k^T L) . F[2k-1] + (u_sin,k^T L) . F[2k]) / sqrt(2).
    """
    L = logits.to(DTYPE).reshape(p * p, p)
    keys = sorted(set(int(k) for k in ks))
    if not keys:
        return torch.zeros(0, dtype=DTYPE)
    UL = sum_basis(p, keys, additive, L.device).T @ L  # [2|K|, p]
    F = fourier_basis(p, L.device)
    coef = {}
    for i, k in enumerate(keys):
        c, s = freq_rows(k)
        coef[k] = (UL[2 * i] @ F[c] + UL[2 * i + 1] @ F[s]) / math.sqrt(2)
    return torch.stack([coef[int(k)] for k in ks])


def cos_fraction(logits: Tensor, p: int, ks: Sequence[int], additive: str = "a+b") -> float:
    """Fraction of logit norm explained by cos(w_k(s - c)), k in ``ks``: sum_k <L, C_k>^2 / ||L||^2.

    L is centred per input (over the answers c) first. NaN for a constant table.
    """
    L = logits.to(DTYPE).reshape(p * p, p)
    L = L - L.mean(1, keepdim=True)
    total = L.pow(2).sum()
    if total == 0:
        return float("nan")
    return float(cos_coefficients(L, p, sorted(set(ks)), additive).pow(2).sum() / total)
