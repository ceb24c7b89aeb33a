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
    "Operation",
    "make_dataset",
    "make_split",
    "register",
    "valid_pairs_count",
]


@dataclass(frozen=True)
class Operation:
    name: str
    fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # int64 arrays a, b -> (a op b) mod p
    needs_prime: bool = False
    valid: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None  # mask of defined pairs
    additive: str | None = None  # "a+b" or "a-b" when labels depend on that combination only
    symbol: str = ""


OPERATIONS: dict[str, Operation] = {}


def register(name: str, *, needs_prime: bool = False, valid=None, additive=None, symbol: str = ""):
    """Decorator: ``@register("add")`` over ``def add(a, b, p): return (a + b) % p``."""

    def wrap(fn):
        OPERATIONS[name] = Operation(name, fn, needs_prime, valid, additive, symbol or name)
        return fn

    return wrap


@register("add", additive="a+b", symbol="a + b")
def _add(a, b, p):
    return (a + b) % p


@register("sub", additive="a-b", symbol="a - b")
def _sub(a, b, p):
    return (a - b) % p


@register("mul", symbol="a * b")
def _mul(a, b, p):
    return (a * b) % p


@register("div", needs_prime=True, valid=lambda a, b, p: b != 0, symbol="a / b")
def _div(a, b, p):
    inv = np.array([pow(int(x), -1, p) if x else 0 for x in range(p)], dtype=np.int64)
    return (a * inv[b]) % p


@register("x2+y2", symbol="a^2 + b^2")
def _x2_y2(a, b, p):
    return (a * a + b * b) % p


@register("x2+xy+y2", symbol="a^2 + ab + b^2")
def _x2_xy_y2(a, b, p):
    return (a * a + a * b + b * b) % p


@register("x3+xy", symbol="a^3 + ab")
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
