"""The coordinates an analysis works in: every operation in its own basis (DESIGN section 6).

An operation with a structure map (``groklab.data.StructureMap``: phi_a, phi_b, phi_c into Z_n with
phi_c(a op b) = phi_a(a) + phi_b(b)) is analysed in phi coordinates: the Fourier basis is over Z_n,
token rows sit at phi(token), answer classes at phi_c(class), and the sum directions are
cos/sin(w_k (phi_a(a) + phi_b(b))) with w_k = 2 pi k / n. add is the identity map (n = p); sub
negates b; mul and div use the discrete logarithm to the smallest primitive root (n = p - 1, the
zero row/column and answer class 0 lie outside the group and are left out); x2+y2 squares (not
injective: only measures over pairs are defined). An operation without a map gets a Basis whose
``reason`` says why, and every Fourier measure is then null with that reason.

Frequencies are k = 1..n//2: k and n-k are one frequency; for even n the last, k = n/2, is the
cos-only row cos(pi x) (for mul, the Legendre symbol).

:class:`Basis` holds the analysed pairs (rows of the dataset) and their coordinates, and builds
the orthonormal bases (sum directions, single-variable directions) the measures project onto.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from groklab.data import OPERATIONS, Dataset, NoStructure, StructureMap
from groklab.records import BasisRecord

__all__ = ["Basis", "basis_of"]

DTYPE = torch.float64


@dataclass(frozen=True, eq=False)
class Basis:
    """Analysed pairs of one task and their coordinates in Z_n (see the module docstring)."""

    op: str
    p: int
    map: StructureMap | None
    reason: str | None  # why there is no structure map (then no Fourier measure is defined)
    rows: Tensor  # [N] rows of the dataset that are analysed (phi_a, phi_b, phi_c all defined)
    ia: Tensor  # [N] phi_a(a), long
    ib: Tensor  # [N] phi_b(b), long

    # -- what the basis is ----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.map.n if self.map is not None else self.p

    @property
    def kind(self) -> str:
        return self.map.kind if self.map is not None else "none"

    def record(self) -> BasisRecord:
        """The ``basis`` field of every record: {"kind", "n", "generator"} (and the reason for "none")."""
        gen = self.map.generator if self.map is not None else None
        return BasisRecord(self.kind, self.n, gen, self.reason)

    @property
    def frequencies(self) -> list[int]:
        """k = 1..n//2 (k = n/2, for even n, is the cos-only frequency)."""
        return list(range(1, self.n // 2 + 1))

    @property
    def s(self) -> Tensor:
        """[N] phi_a(a) + phi_b(b) mod n, long: the coordinate of the answer."""
        return (self.ia + self.ib) % self.n

    # -- which measures are defined ------------------------------------------------------------------
    @property
    def pair_reason(self) -> str | None:
        """Why measures over pairs (sum directions, restricted/excluded loss) are undefined, or None."""
        return self.reason

    @property
    def token_reason(self) -> str | None:
        """Why measures over tokens (embedding spectrum, 2-D neuron tables, frequency ablation) are
        undefined, or None: they need a one-to-one map."""
        if self.map is None:
            return self.reason
        if not self.map.injective:
            return f"the structure map of {self.op!r} ({self.kind}) is not one-to-one, so tokens have no place in Z_n"
        return None

    @property
    def table_reason(self) -> str | None:
        """Why a 2-D table over (phi_a, phi_b) is undefined, or None: a one-to-one map whose analysed
        pairs cover every cell of Z_n x Z_n."""
        why = self.token_reason
        if why is None and len(self.rows) != self.n * self.n:
            why = f"the {len(self.rows)} analysed pairs do not fill the {self.n} x {self.n} table"
        return why

    # -- coordinates of tokens and classes ----------------------------------------------------------
    @property
    def token_order(self) -> Tensor:
        """[n] tokens in phi_a order: the token t with phi_a(t) = j at position j (token measures)."""
        assert self.map is not None and self.token_reason is None, self.token_reason
        return _order(self.map.phi_a, self.n)

    @property
    def class_order(self) -> Tensor:
        """[n] answer classes in phi_c order: the class c with phi_c(c) = j at position j."""
        assert self.map is not None
        return _order(self.map.phi_c, self.n)

    def table(self, X: Tensor) -> Tensor:
        """``X [N, ...]`` over the analysed pairs as a table ``[n, n, ...]`` indexed (phi_a(a), phi_b(b))."""
        assert self.table_reason is None, self.table_reason
        out = X.new_zeros((self.n * self.n, *X.shape[1:]))
        out[self.ia * self.n + self.ib] = X
        return out.reshape(self.n, self.n, *X.shape[1:])

    # -- directions over the analysed pairs ----------------------------------------------------------
    def sum_basis(self, ks: Sequence[int]) -> Tensor:
        """U [N, m], orthonormal columns spanning cos/sin(w_k s) for k in ``ks`` with the constant
        removed (QR; for one-to-one maps these directions are already orthogonal): P_K = U U^T."""
        return _span(self, ("s",), _key(ks))

    def single_basis(self, ks: Sequence[int]) -> Tensor:
        """U [N, m] spanning cos/sin(w_k phi_a(a)) and cos/sin(w_k phi_b(b)) for k in ``ks``, constant
        removed: the directions of f(a) + g(b), where pre-activations live."""
        return _span(self, ("ia", "ib"), _key(ks))

    def waves(self, coord: Tensor, k: int) -> Tensor:
        """[len(coord), 2] cos and sin of w_k * coord (float64); the sin column is 0 for k = n/2."""
        x = coord.to(DTYPE) * (2 * math.pi * k / self.n)
        return torch.stack([torch.cos(x), torch.sin(x)], 1)


def _key(ks: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(set(int(k) for k in ks)))


def _order(phi: np.ndarray, n: int) -> Tensor:
    order = np.full(n, -1, dtype=np.int64)
    dom = np.nonzero(phi >= 0)[0]
    order[phi[dom]] = dom
    return torch.from_numpy(order)


@functools.lru_cache(maxsize=128)
def _span_cached(basis: Basis, coords: tuple[str, ...], ks: tuple[int, ...]) -> Tensor:
    cols = []
    for name in coords:
        coord = basis.s if name == "s" else getattr(basis, name)
        for k in ks:
            if not 1 <= k <= basis.n // 2:
                raise ValueError(f"frequency {k} outside 1..{basis.n // 2} for n = {basis.n}")
            cols.append(basis.waves(coord.cpu(), k))
    if not cols:
        return torch.zeros(len(basis.rows), 0, dtype=DTYPE)
    A = torch.cat(cols, 1)
    A = A - A.mean(0, keepdim=True)  # the constant removed
    Q, R = torch.linalg.qr(A)
    keep = R.diagonal().abs() > 1e-9 * max(1.0, float(R.diagonal().abs().max()))
    return Q[:, keep]


def _span(basis: Basis, coords: tuple[str, ...], ks: tuple[int, ...]) -> Tensor:
    return _span_cached(basis, coords, ks).to(basis.ia.device)


def basis_of(ds: Dataset) -> Basis:
    """The basis of task ``ds``: its structure map and the pairs where phi_a, phi_b, phi_c are defined.
    One object per (operation, p, device), so the directions it builds are computed once."""
    return _basis(ds.op, ds.p, str(ds.tokens.device))


@functools.lru_cache(maxsize=32)
def _basis(op: str, p: int, device: str) -> Basis:
    from groklab.data import make_dataset

    ds = make_dataset(op, p)
    try:
        smap = OPERATIONS[op].structure_map(p)
    except NoStructure as e:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Basis(op, p, None, str(e), empty, empty, empty)
    a, b, c = (ds.tokens[:, 0].numpy(), ds.tokens[:, 1].numpy(), ds.labels.numpy())
    ia, ib, ic = smap.phi_a[a], smap.phi_b[b], smap.phi_c[c]
    keep = np.nonzero((ia >= 0) & (ib >= 0) & (ic >= 0))[0]
    as_t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(device)  # noqa: E731
    return Basis(op, p, smap, None, as_t(keep), as_t(ia[keep]), as_t(ib[keep]))
