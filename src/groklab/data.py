"""Modular-arithmetic tasks: the operation registry, the table of pairs and its seeded split.

Inputs are pairs (a, b) in Z_p^2 in a-major order: pair index ``a * p + b``. A model sees the tokens
``[a, b, =]`` where ``=`` is token ``p``; the label is ``(a op b) mod p``. Operations that are not
defined everywhere (division by 0) exclude those pairs, so the valid pairs are a subset of the p^2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "OPERATIONS",
    "Dataset",
    "NoStructure",
    "Operation",
    "StructureMap",
    "discrete_log",
    "is_prime",
    "primitive_root",
    "make_dataset",
    "make_split",
    "register",
    "valid_pairs_count",
]


@dataclass(frozen=True)
class StructureMap:
    """phi_a, phi_b, phi_c: tokens into Z_n with phi_c(a op b) = phi_a(a) + phi_b(b) (mod n) on the
    pairs where all three are defined (DESIGN section 6, "Structure maps"). Arrays are [p] int64,
    -1 where a token lies outside the map's domain (0 under a discrete logarithm)."""

    kind: str  # identity | negate_b | discrete_log | discrete_log_div | square
    n: int
    generator: int | None
    phi_a: np.ndarray
    phi_b: np.ndarray
    phi_c: np.ndarray

    @property
    def injective(self) -> bool:
        """Whether phi_a, phi_b and phi_c are one-to-one on their domains (token measures need it)."""
        return all(len(set(m[m >= 0].tolist())) == int((m >= 0).sum()) for m in (self.phi_a, self.phi_b, self.phi_c))


class NoStructure(ValueError):
    """An operation (at this p) has no structure map; the message says why."""


@dataclass(frozen=True)
class Operation:
    name: str
    fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # int64 arrays a, b -> (a op b) mod p
    needs_prime: bool = False
    valid: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None  # mask of defined pairs
    structure: Callable[[int], StructureMap] | str = "no structure map is known"  # map at p, or why none
    symbol: str = ""

    def structure_map(self, p: int) -> StructureMap:
        """The operation's structure map at ``p``; NoStructure (with the reason) when it has none."""
        if isinstance(self.structure, str):
            raise NoStructure(f"operation {self.name!r}: {self.structure}")
        return self.structure(p)


OPERATIONS: dict[str, Operation] = {}


def register(name: str, *, needs_prime: bool = False, valid=None, structure=None, symbol: str = ""):
    """Decorator: ``@register("add", structure=identity)`` over ``def add(a, b, p): return (a + b) % p``.

    ``structure``: a function p -> StructureMap (it may raise NoStructure for some p), or a string
    saying why the operation has none."""

    def wrap(fn):
        kw = {"structure": structure} if structure is not None else {}
        OPERATIONS[name] = Operation(name, fn, needs_prime, valid, symbol=symbol or name, **kw)
        return fn

    return wrap


# ---------------------------------------------------------------- structure maps


def _identity(p: int) -> StructureMap:
    x = np.arange(p, dtype=np.int64)
    return StructureMap("identity", p, None, x, x, x)


def _negate_b(p: int) -> StructureMap:
    x = np.arange(p, dtype=np.int64)
    return StructureMap("negate_b", p, None, x, (-x) % p, x)


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def primitive_root(p: int) -> int:
    """The smallest generator of the multiplicative group mod the prime ``p``."""
    if not is_prime(p):
        raise NoStructure(f"p = {p} is not prime, so Z_p* is not cyclic and has no discrete logarithm")
    factors = [q for q in range(2, p) if (p - 1) % q == 0 and is_prime(q)]
    return next(g for g in range(1, p) if all(pow(g, (p - 1) // q, p) != 1 for q in factors) or p == 2)


def discrete_log(p: int) -> np.ndarray:
    """[p] int64: dlog_g(x) for x in 1..p-1 to the smallest primitive root g; -1 at x = 0."""
    g = primitive_root(p)
    out = np.full(p, -1, dtype=np.int64)
    x = 1
    for e in range(p - 1):
        out[x] = e
        x = x * g % p
    return out


def _dlog_mul(p: int) -> StructureMap:
    d = discrete_log(p)
    return StructureMap("discrete_log", p - 1, primitive_root(p), d, d, d)


def _dlog_div(p: int) -> StructureMap:
    d = discrete_log(p)
    neg = np.where(d >= 0, (-d) % (p - 1), -1)
    return StructureMap("discrete_log_div", p - 1, primitive_root(p), d, neg, d)


def _square(p: int) -> StructureMap:
    x = np.arange(p, dtype=np.int64)
    return StructureMap("square", p, None, x * x % p, x * x % p, x)


# ---------------------------------------------------------------- the operations


@register("add", structure=_identity, symbol="a + b")
def _add(a, b, p):
    return (a + b) % p


@register("sub", structure=_negate_b, symbol="a - b")
def _sub(a, b, p):
    return (a - b) % p


@register("mul", structure=_dlog_mul, symbol="a * b")
def _mul(a, b, p):
    return (a * b) % p


@register("div", needs_prime=True, valid=lambda a, b, p: b != 0, structure=_dlog_div, symbol="a / b")
def _div(a, b, p):
    inv = np.array([pow(int(x), -1, p) if x else 0 for x in range(p)], dtype=np.int64)
    return (a * inv[b]) % p


@register("x2+y2", structure=_square, symbol="a^2 + b^2")
def _x2_y2(a, b, p):
    return (a * a + b * b) % p


NO_MAP = "no map phi with phi_c(a op b) = phi_a(a) + phi_b(b) is known (the label depends on a and b jointly)"


@register("x2+xy+y2", structure=NO_MAP, symbol="a^2 + ab + b^2")
def _x2_xy_y2(a, b, p):
    return (a * a + a * b + b * b) % p


@register("x3+xy", structure=NO_MAP, symbol="a^3 + ab")
def _x3_xy(a, b, p):
    return (a * a * a + a * b) % p


def _grid(p: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(p * p, dtype=np.int64)
    return idx // p, idx % p  # a-major


def _valid_mask(op: Operation, p: int) -> np.ndarray:
    a, b = _grid(p)
    return np.ones(p * p, dtype=bool) if op.valid is None else op.valid(a, b, p)


def valid_pairs_count(op: str, p: int) -> int:
    return int(_valid_mask(OPERATIONS[op], p).sum())


@dataclass
class Dataset:
    """Every valid pair of one task. ``pairs`` are a-major pair indices a*p+b."""

    op: str
    p: int
    pairs: Tensor  # [n] int64, ascending
    tokens: Tensor  # [n, 3] int64: a, b, p (the "=" token)
    labels: Tensor  # [n] int64

    @property
    def n(self) -> int:
        return len(self.pairs)

    def to(self, device: str | torch.device) -> Dataset:
        """The same dataset with its tensors on ``device``."""
        return Dataset(self.op, self.p, self.pairs.to(device), self.tokens.to(device), self.labels.to(device))

    def rows(self, pair_index: Tensor) -> Tensor:
        """Positions in this dataset of the given pair indices (each must be valid)."""
        return torch.searchsorted(self.pairs, pair_index)


def make_dataset(op: str, p: int) -> Dataset:
    """The full table of valid pairs for ``(a op b) mod p`` in a-major order."""
    spec = OPERATIONS[op]
    a, b = _grid(p)
    mask = _valid_mask(spec, p)
    a, b = a[mask], b[mask]
    labels = spec.fn(a, b, p).astype(np.int64)
    tokens = np.stack([a, b, np.full_like(a, p)], axis=1)
    pairs = np.nonzero(mask)[0].astype(np.int64)
    return Dataset(op, p, torch.from_numpy(pairs), torch.from_numpy(tokens), torch.from_numpy(labels))


def make_split(ds: Dataset, train_frac: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of the valid pairs: (train, test) pair indices, each sorted.

    ``round(train_frac * n)`` pairs go to training; the rest to test. Disjoint and complete.
    """
    n_train = int(round(train_frac * ds.n))
    perm = np.random.default_rng(split_seed).permutation(ds.n)
    pairs = ds.pairs.numpy()
    return np.sort(pairs[perm[:n_train]]), np.sort(pairs[perm[n_train:]])
