"""Progress measures: each field against its definition; honest nulls where a measure is undefined."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from groklab.analysis.basis import basis_of
from groklab.analysis.fourier import (
    cos_fraction,
    embedding_spectrum,
    excluded_logits,
    gini,
    restricted_logits,
    trig_fve,
    unembed_spectrum,
)
from groklab.analysis.progress import FOURIER_FIELDS, fourier_null_reason, progress_measures, progress_series
from groklab.config import ModelConfig
from groklab.data import make_dataset, make_split
from groklab.models import build_model
from groklab.records import to_json

P = 11
CFG = ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=24)


def setup(op: str = "add", arch: str = "transformer"):
    cfg = ModelConfig(arch=arch, d_model=16, n_heads=2, d_head=8, d_mlp=24, d_embed=8, hidden=[24])
    model = build_model(cfg, P, seed=0)
    ds = make_dataset(op, P)
    train, test = make_split(ds, 0.4, 0)
    return model, ds, train, test


@pytest.mark.parametrize(
    ("op", "arch"),
    [("add", "transformer"), ("sub", "transformer"), ("add", "mlp"), ("mul", "transformer"), ("div", "mlp")],
)
def test_every_measure_follows_its_definition(op, arch):
    """Each field against the toolkit applied by hand, over the analysed pairs of the task's basis
    (every pair for add/sub; the (p-1)^2 pairs of the group for mul, the a != 0 pairs for div)."""
    model, ds, train, test = setup(op, arch)
    K = [2, 5]
    rec = progress_measures(model, ds, train, test, K, step=100)
    with torch.no_grad():
        logits = model.eq_logits(ds.tokens).double()
        _, cache = model.run_with_cache(ds.tokens)
    pre, post = (cache[n] for n in model.neuron_hooks)
    if pre.ndim == 3:
        pre, post = pre[:, -1], post[:, -1]
    tr, te = ds.rows(torch.as_tensor(train)), ds.rows(torch.as_tensor(test))
    y = ds.labels
    basis = basis_of(ds)
    rows = basis.rows
    in_tr = torch.zeros(ds.n, dtype=torch.bool)
    in_tr[tr] = True
    atr, ate = in_tr[rows], ~in_tr[rows]  # the analysed pairs' train and test parts
    assert rec.step == 100 and rec.key_frequencies == K
    assert rec.train_loss == pytest.approx(float(F.cross_entropy(logits[tr], y[tr])), rel=1e-5)
    assert rec.test_loss == pytest.approx(float(F.cross_entropy(logits[te], y[te])), rel=1e-5)
    assert rec.train_acc == pytest.approx(float((logits[tr].argmax(-1) == y[tr]).double().mean()))
    assert rec.test_acc == pytest.approx(float((logits[te].argmax(-1) == y[te]).double().mean()))
    sq = sum(float(p.detach().double().pow(2).sum()) for p in model.parameters())
    assert rec.weight_norm_sq == pytest.approx(sq) and rec.weight_norm == pytest.approx(math.sqrt(sq))
    assert rec.gini_embed == pytest.approx(gini(embedding_spectrum(model.W_E_tokens.detach(), basis)))
    assert rec.gini_unembed == pytest.approx(gini(unembed_spectrum(model.W_L.detach(), basis)))
    L, ya = logits[rows], y[rows]
    L_r, L_x = restricted_logits(L, basis, K), excluded_logits(L, basis, K)
    assert rec.restricted_loss == pytest.approx(float(F.cross_entropy(L_r, ya)), rel=1e-5)
    assert rec.restricted_loss_test == pytest.approx(float(F.cross_entropy(L_r[ate], ya[ate])), rel=1e-5)
    assert rec.excluded_loss == pytest.approx(float(F.cross_entropy(L_x[atr], ya[atr])), rel=1e-5)
    assert rec.trig_fve_pre == pytest.approx(trig_fve(pre[rows].double(), basis, K, single=True), rel=1e-4)
    assert rec.trig_fve_post == pytest.approx(trig_fve(post[rows].double(), basis, K), rel=1e-4)
    assert rec.trig_fve_logits == pytest.approx(trig_fve(L, basis, K), rel=1e-4)
    assert rec.cos_fraction == pytest.approx(cos_fraction(L, basis, K), rel=1e-4)
    assert rec.null_reasons == {}
    json.dumps(to_json(rec), allow_nan=False)


@pytest.mark.parametrize("op", ["x2+xy+y2", "x3+xy"])
def test_operations_without_a_structure_map_get_nulls_with_reasons(op):
    model, ds, train, test = setup(op)
    rec = progress_measures(model, ds, train, test, [1, 2])
    d = to_json(rec)
    for f in (*FOURIER_FIELDS, "gini_embed", "gini_unembed"):
        assert d[f] is None and "no map" in d["null_reasons"][f]
    # what is defined is computed: losses, accuracies, norms
    for f in ("train_loss", "test_loss", "train_acc", "test_acc", "weight_norm"):
        assert d[f] is not None and math.isfinite(d[f])
    json.dumps(d, allow_nan=False)


def test_a_map_that_is_not_one_to_one_gets_pair_measures_only():
    model, ds, train, test = setup("x2+y2")
    rec = progress_measures(model, ds, train, test, [1, 2])
    assert rec.gini_embed is None and "not one-to-one" in rec.null_reasons["gini_embed"]
    for f in (*FOURIER_FIELDS, "gini_unembed"):
        assert getattr(rec, f) is not None, f


def test_null_reasons():
    assert fourier_null_reason(basis_of(make_dataset("add", 11)), [1]) is None
    assert "no map" in fourier_null_reason(basis_of(make_dataset("x3+xy", 11)), [1])
    assert "not prime" in fourier_null_reason(basis_of(make_dataset("mul", 15)), [1])
    assert "no key frequencies" in fourier_null_reason(basis_of(make_dataset("sub", 11)), [])
    model, ds, train, test = setup()
    rec = progress_measures(model, ds, train, test, [])
    assert rec.restricted_loss is None and "no key frequencies" in rec.null_reasons["restricted_loss"]


def test_progress_series_loads_each_state_in_turn():
    model, ds, train, test = setup()
    states = []
    for seed in (1, 2):
        states.append((seed * 10, build_model(CFG, P, seed=seed).state_dict()))
    recs = progress_series(model, states, ds, train, test, [3])
    assert [r.step for r in recs] == [10, 20]
    other = build_model(CFG, P, seed=1)
    assert recs[0].test_loss == pytest.approx(progress_measures(other, ds, train, test, [3]).test_loss)
    assert recs[0].key_frequencies == recs[1].key_frequencies == [3]
