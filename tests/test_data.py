import numpy as np
import pytest
import torch

from groklab.data import OPERATIONS, make_dataset, make_split

DIRECT = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: next(c for c in range(p) if (c * b) % p == a),
    "x2+y2": lambda a, b, p: (a**2 + b**2) % p,
    "x2+xy+y2": lambda a, b, p: (a**2 + a * b + b**2) % p,
    "x3+xy": lambda a, b, p: (a**3 + a * b) % p,
}


def test_registry_has_every_operation():
    assert set(OPERATIONS) == set(DIRECT)


@pytest.mark.parametrize("op", sorted(DIRECT))
@pytest.mark.parametrize("p", [7, 13])
def test_labels_match_direct_computation(op, p):
    ds = make_dataset(op, p)
    for pair, (a, b, eq), c in zip(ds.pairs.tolist(), ds.tokens.tolist(), ds.labels.tolist(), strict=True):
        assert pair == a * p + b and eq == p
        assert c == DIRECT[op](a, b, p)
    expected = p * (p - 1) if op == "div" else p * p
    assert ds.n == expected
    if op == "div":
        assert not (ds.tokens[:, 1] == 0).any()


@pytest.mark.parametrize("op", sorted(DIRECT))
def test_split_is_disjoint_complete_and_seeded(op):
    ds = make_dataset(op, 13)
    train, test = make_split(ds, 0.3, split_seed=5)
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), ds.pairs.numpy())
    assert len(train) == round(0.3 * ds.n)
    again, _ = make_split(ds, 0.3, split_seed=5)
    other, _ = make_split(ds, 0.3, split_seed=6)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_rows_maps_pair_index_to_dataset_row():
    ds = make_dataset("div", 7)
    pairs = torch.tensor([1 * 7 + 3, 6 * 7 + 6])
    rows = ds.rows(pairs)
    assert ds.pairs[rows].tolist() == pairs.tolist()
