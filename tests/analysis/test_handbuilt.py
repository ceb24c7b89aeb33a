"""Hand-built models that implement the Fourier multiplication algorithm for chosen frequencies.

No training: every weight is set by hand, so the answer of every analysis is known. Each model
works in an operation's structure map (phi into Z_n, DESIGN section 6): x below stands for
phi_a(x), w_k = 2 pi k / n, and W_U reads cos/sin(w_k phi_c(c)); for add phi is the identity
(n = p), for mul the discrete logarithm (n = p - 1; the token 0 row and answer class 0 stay zero,
so the model answers the (p-1)^2 pairs of the group and nothing else), for sub and div phi_b = -phi_a.

Transformer (1 layer, 1 head, no LayerNorm): W_E[x] holds cos(w_k x), sin(w_k x) for k in K in
"input" dims; the `=` row and the positional embeddings are zero. W_Q = W_K = 0 makes attention
uniform over the three positions, and W_V = I, W_O = 3 I put E(a) + E(b) into the `=` stream.
For each k, M neurons with phases phi_m = 2 pi m / M compute relu(cos(w_k a + phi) + cos(w_k b + phi)),
whose (1, 1) Fourier component is proportional to cos(w_k (a+b) + 2 phi). W_out writes
cos(2 phi), -sin(2 phi) into "output" dims and W_U reads them with cos(w_k c), sin(w_k c), so the
sum over phases of cos(w_k (a+b) + 2 phi) cos(2 phi + w_k c) is (M/2) cos(w_k (a+b-c)).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from groklab.analysis.ablation import ablation_report
from groklab.analysis.basis import basis_of
from groklab.analysis.fourier import basis_labels, logit_fourier_norms
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.progress import progress_measures
from groklab.config import ModelConfig
from groklab.data import OPERATIONS, make_dataset, make_split
from groklab.models import MLPModel, Transformer
from groklab.records import to_json

PHASES = 8  # a's phases phi = 2 pi m / 8
M_PHASES = 2 * PHASES  # neurons per frequency: each phase twice, b's phase psi = phi or phi + pi/2


def _neurons(p: int, ks: list[int], split_b: bool = False) -> tuple[list[tuple[int, float, float]], int]:
    """(frequency index, phi, psi) per neuron. With ``split_b`` the second neuron of each phase reads
    b at psi = phi + pi/2: for even n and odd k, pairs with w(a - b) = pi silence every neuron whose
    phases agree (cos A + cos B = 0), not these. The design is a product (8 phases x 2 offsets), so
    every unwanted harmonic of relu(cos A + cos B) still cancels over the neurons."""
    units = [
        (i, 2 * math.pi * m / PHASES, 2 * math.pi * m / PHASES + (math.pi / 2 if split_b and v else 0.0))
        for i in range(len(ks))
        for m in range(PHASES)
        for v in range(2)
    ]
    return units, len(units)


def waves(p: int, op: str, k: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(cos, sin) of w_k phi_a(x) for tokens x in 0..p-1 (0 outside the map), and the sign of phi_b
    relative to phi_a (+1 for add and mul, -1 for sub and div)."""
    smap = OPERATIONS[op].structure_map(p)
    inside = torch.from_numpy(smap.phi_a >= 0)
    angle = torch.from_numpy(smap.phi_a).to(torch.float64) * (2 * math.pi * k / smap.n)
    sign = 1.0 if (smap.phi_b == smap.phi_a).all() else -1.0
    return torch.cos(angle) * inside, torch.sin(angle) * inside, sign


def answer_waves(p: int, op: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of w_k phi_c(c) for answers c (0 outside the map)."""
    smap = OPERATIONS[op].structure_map(p)
    inside = torch.from_numpy(smap.phi_c >= 0)
    angle = torch.from_numpy(smap.phi_c).to(torch.float64) * (2 * math.pi * k / smap.n)
    return torch.cos(angle) * inside, torch.sin(angle) * inside


def fourier_transformer(p: int, ks: list[int], scale: float = 40.0, op: str = "add") -> Transformer:
    """A 1-layer transformer computing a op b through frequencies ``ks`` of op's structure map.

    (Uniform attention makes it symmetric in a and b, so it needs phi_b = phi_a: add or mul.)"""
    nk = len(ks)
    d_model = 4 * nk  # [cos_k, sin_k of the input] + [cos, sin read by the unembedding]
    units, d_mlp = _neurons(p, ks)
    cfg = ModelConfig(d_model=d_model, n_heads=1, d_head=d_model, d_mlp=d_mlp, act="relu", layernorm=False)
    model = Transformer(cfg, p)
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        W_E = torch.zeros(p + 1, d_model, dtype=torch.float64)
        for i, k in enumerate(ks):
            W_E[:p, 2 * i], W_E[:p, 2 * i + 1], sign = waves(p, op, k)
            assert sign == 1.0, "uniform attention cannot tell a from b"
        attn = model.blocks[0].attn
        attn.W_V[0] = torch.eye(d_model)
        attn.W_O[0] = 3 * torch.eye(d_model)
        mlp = model.blocks[0].mlp
        W_in = torch.zeros(d_model, d_mlp, dtype=torch.float64)
        W_out = torch.zeros(d_mlp, d_model, dtype=torch.float64)
        W_U = torch.zeros(d_model, p, dtype=torch.float64)
        for n, (i, phi, _) in enumerate(units):
            W_in[2 * i, n], W_in[2 * i + 1, n] = math.cos(phi), -math.sin(phi)
            o = 2 * nk + 2 * i
            W_out[n, o], W_out[n, o + 1] = math.cos(2 * phi), -math.sin(2 * phi)
        for i, k in enumerate(ks):
            c, si = answer_waves(p, op, k)
            o = 2 * nk + 2 * i
            W_U[o], W_U[o + 1] = scale * c, scale * si
        model.embed.W_E.copy_(W_E)
        mlp.W_in.copy_(W_in)
        mlp.W_out.copy_(W_out)
        model.unembed.W_U.copy_(W_U)
    return model


def fourier_mlp(p: int, ks: list[int], scale: float = 40.0, op: str = "add") -> MLPModel:
    """The MLP model version: neurons relu(cos(w a + phi) + cos(w b' + psi)), W_U reading
    cos(w(a + b' - c)), with b' = phi_b(b) = +-phi_a(b): b's half of W_in reads cos(-w b + psi) when
    phi_b = -phi_a (sub, div), so the neurons carry cos(w(a - b) + phi + psi)."""
    nk = len(ks)
    units, d_hidden = _neurons(p, ks, split_b=True)
    cfg = ModelConfig(arch="mlp", d_embed=2 * nk, hidden=[d_hidden], act="relu")
    model = MLPModel(cfg, p)
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        sign = 1.0
        for i, k in enumerate(ks):
            model.embed.W_E[:, 2 * i], model.embed.W_E[:, 2 * i + 1], sign = waves(p, op, k)
        W_in = model.blocks[0].mlp.W_in  # [2 * d_embed, d_hidden]: a's embedding, then b's
        for n, (i, phi, psi) in enumerate(units):
            W_in[2 * i, n], W_in[2 * i + 1, n] = math.cos(phi), -math.sin(phi)
            # cos(sign w b + psi) = cos(w b) cos(psi) - sign sin(w b) sin(psi)
            W_in[2 * nk + 2 * i, n], W_in[2 * nk + 2 * i + 1, n] = math.cos(psi), -sign * math.sin(psi)
            c, si = answer_waves(p, op, ks[i])
            model.unembed.W_U[n] = scale * (math.cos(phi + psi) * c - math.sin(phi + psi) * si)
    return model


# ---------------------------------------------------------------- the analysis recovers the construction

P, KEYS = 31, [7, 11]  # coprime to 31 and to 30 (the discrete-log group), so each separates every answer


def _logits(model, ds):
    with torch.no_grad():
        return model.forward_last(ds.tokens)


BUILT = ["transformer-add", "mlp-add", "mlp-sub", "mlp-mul", "mlp-div"]


@pytest.fixture(scope="module", params=BUILT)
def built(request):
    arch, op = request.param.split("-")
    ds = make_dataset(op, P)
    model = fourier_transformer(P, KEYS, op=op) if arch == "transformer" else fourier_mlp(P, KEYS, op=op)
    train, test = make_split(ds, 0.3, 0)
    return request.param, model, ds, train, test


def test_handbuilt_model_is_exact(built):
    """The construction must be right before anything is asserted about its analysis: exact on the
    pairs of its structure map (all pairs for add and sub; the group's (p-1)^2 for mul and div)."""
    _, model, ds, *_ = built
    logits = _logits(model, ds)
    rows = basis_of(ds).rows
    assert len(rows) == (P * P if ds.op in ("add", "sub") else (P - 1) ** 2)
    assert (logits[rows].argmax(-1) == ds.labels[rows]).all()
    if isinstance(model, Transformer):
        torch.testing.assert_close(model.eq_logits(ds.tokens), logits, atol=1e-4, rtol=1e-5)


def test_key_frequencies_recovered_by_both_methods(built):
    _, model, ds, *_ = built
    na = analyze_neurons(model, ds)
    assert na.defined and na.key_frequencies == KEYS
    assert na.key_frequency_counts == dict.fromkeys(KEYS, M_PHASES)
    assert na.embedding_key_frequencies == KEYS
    assert na.agreement.identical and na.agreement.jaccard == 1.0
    assert min(na.neuron_score) > 0.9  # relu(cos A + cos B) keeps ~96% of its variance at its frequency
    assert na.n_clustered == len(KEYS) * M_PHASES
    json.dumps(to_json(na), allow_nan=False)


def test_progress_measures_of_the_construction(built):
    _, model, ds, train, test = built
    rec = progress_measures(model, ds, train, test, KEYS, step=7)
    exact = ds.op in ("add", "sub")  # mul and div miss the zero row and column, outside the group
    assert rec.step == 7 and (rec.train_acc == 1.0) == exact and (rec.test_acc == 1.0) == exact
    # the key-frequency part of the logits alone does the task (better: it drops the harmonics)
    assert rec.restricted_loss is not None and (rec.restricted_loss <= rec.test_loss + 1e-9 or not exact)
    assert rec.restricted_loss < 0.05 and rec.restricted_loss_test < 0.05
    # without it nothing is left to do the task: far worse than chance, log p
    assert rec.excluded_loss is not None and rec.excluded_loss > 2 * math.log(P)
    assert rec.cos_fraction is not None and rec.cos_fraction > 0.75
    assert rec.trig_fve_logits is not None and rec.trig_fve_logits > 0.75
    # pre-activations are sums of single-token terms cos(w_k a + phi) + cos(w_k b + phi): all of their
    # variance lies along the key frequencies' single-variable directions
    assert rec.trig_fve_pre is not None and rec.trig_fve_pre == pytest.approx(1.0, abs=1e-5)
    assert rec.trig_fve_post is not None and rec.trig_fve_post > 0.05
    # W_E and W_L hold exactly two of the 15 frequencies (of Z_31, or of Z_30 with its cos-only 15), equally
    assert rec.gini_embed == pytest.approx(1 - 2 / 15, abs=1e-6)
    assert rec.gini_unembed == pytest.approx(1 - 2 / 15, abs=1e-6)
    assert rec.null_reasons == {}
    # measured with the wrong frequencies, the same model looks like it has no algorithm
    wrong = progress_measures(model, ds, train, test, [1, 2], step=7)
    assert wrong.restricted_loss > math.log(P) - 0.01 and wrong.cos_fraction < 1e-6
    json.dumps(to_json(rec), allow_nan=False)


def test_logit_fourier_norms_sit_on_the_key_blocks(built):
    _, model, ds, *_ = built
    basis = basis_of(ds)
    norms = logit_fourier_norms(_logits(model, ds)[basis.rows], basis)
    norms[0, 0] = 0
    labels = basis_labels(basis.n)
    top = torch.topk(norms.flatten(), 8).indices
    for idx in top.tolist():
        i, j = divmod(idx, basis.n)
        ki, kj = int(labels[i].split()[1]), int(labels[j].split()[1])
        assert ki == kj and ki in KEYS


def test_ablations_of_the_construction(built):
    name, model, ds, _, test = built
    na = analyze_neurons(model, ds)
    rep = ablation_report(
        model, ds, test, na.key_frequencies, na.cluster_dict(), na.neuron_frequency, n_draws=10, seed=0
    )
    d = rep
    json.dumps(to_json(d), allow_nan=False)
    exact = ds.op in ("add", "sub")
    assert (d.baseline.test_acc == 1.0) == exact and d.frequency.baseline.test_acc == 1.0
    assert d.basis.kind == basis_of(ds).kind
    # removing the key frequencies from W_E leaves nothing: uniform logits, loss log p, chance accuracy
    key = d.frequency.key
    assert key.frequencies == KEYS
    assert key.test_loss == pytest.approx(math.log(P), abs=1e-3)
    assert key.test_acc < 0.2 and key.acc_drop > 80
    # removing as many random non-key frequencies changes nothing
    ctrl = d.frequency.control
    assert len(ctrl.draws) == 10 and ctrl.n_frequencies == 2
    for draw in ctrl.draws:
        assert not set(draw.frequencies) & set(KEYS) and len(draw.frequencies) == 2
        assert draw.test_acc == 1.0
    assert ctrl.acc_drop.mean == 0.0
    # neurons: every neuron matters a little, both clusters together everything
    neurons = d.neurons
    assert len(neurons.importance) == len(KEYS) * M_PHASES
    assert min(neurons.importance) > 0 or not exact  # (the zero row of mul/div is answered by no neuron)
    assert [c.k for c in neurons.clusters] == KEYS
    assert neurons.all_clusters.test_loss == pytest.approx(math.log(P), abs=0.05)
    for c in neurons.clusters:  # one frequency left still answers most inputs
        assert c.size == M_PHASES and c.ablated.test_acc > 0.5
        assert c.random.n_draws == 10
    cum = neurons.cumulative
    assert cum.n_ablated[0] == 0 and cum.test_acc[0] == d.baseline.test_acc and cum.test_acc[-1] < 0.2
    assert cum.n_to_below_half is not None and 1 <= cum.n_to_below_half <= len(KEYS) * M_PHASES
    assert cum.test_acc[cum.n_to_below_half] < 0.5
    assert all(a >= 0.5 for a in cum.test_acc[: cum.n_to_below_half])
    if name.startswith("transformer"):  # the only head carries a and b to `=`
        assert [(h.layer, h.head) for h in d.heads] == [(0, 0)]
        assert d.heads[0].test_acc < 0.2
    else:
        assert d.heads is None and "no attention heads" in d.heads_reason
