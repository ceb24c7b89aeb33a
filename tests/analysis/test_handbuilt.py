"""Hand-built models that implement the Fourier multiplication algorithm for chosen frequencies.

No training: every weight is set by hand, so the answer of every analysis is known.

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
from groklab.analysis.fourier import basis_labels, logit_fourier_norms
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.progress import progress_measures
from groklab.config import ModelConfig
from groklab.data import make_dataset, make_split
from groklab.models import MLPModel, Transformer
from groklab.records import to_json

M_PHASES = 8


def _neurons(p: int, ks: list[int]) -> tuple[list[tuple[int, float]], int]:
    units = [(i, 2 * math.pi * m / M_PHASES) for i in range(len(ks)) for m in range(M_PHASES)]
    return units, len(units)


def fourier_transformer(p: int, ks: list[int], scale: float = 40.0) -> Transformer:
    """A 1-layer transformer computing (a + b) mod p through frequencies ``ks``.

    (Uniform attention makes it symmetric in a and b, so it cannot do a - b; ``fourier_mlp`` can.)"""
    nk = len(ks)
    d_model = 4 * nk  # [cos_k, sin_k of the input] + [cos, sin read by the unembedding]
    units, d_mlp = _neurons(p, ks)
    cfg = ModelConfig(d_model=d_model, n_heads=1, d_head=d_model, d_mlp=d_mlp, act="relu", layernorm=False)
    model = Transformer(cfg, p)
    x = torch.arange(p, dtype=torch.float64)
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        W_E = torch.zeros(p + 1, d_model, dtype=torch.float64)
        for i, k in enumerate(ks):
            w = 2 * math.pi * k / p
            W_E[:p, 2 * i] = torch.cos(w * x)
            W_E[:p, 2 * i + 1] = torch.sin(w * x)
        attn = model.blocks[0].attn
        attn.W_V[0] = torch.eye(d_model)
        attn.W_O[0] = 3 * torch.eye(d_model)
        mlp = model.blocks[0].mlp
        W_in = torch.zeros(d_model, d_mlp, dtype=torch.float64)
        W_out = torch.zeros(d_mlp, d_model, dtype=torch.float64)
        W_U = torch.zeros(d_model, p, dtype=torch.float64)
        for n, (i, phi) in enumerate(units):
            W_in[2 * i, n], W_in[2 * i + 1, n] = math.cos(phi), -math.sin(phi)
            o = 2 * nk + 2 * i
            W_out[n, o], W_out[n, o + 1] = math.cos(2 * phi), -math.sin(2 * phi)
        for i, k in enumerate(ks):
            w = 2 * math.pi * k / p
            o = 2 * nk + 2 * i
            W_U[o], W_U[o + 1] = scale * torch.cos(w * x), scale * torch.sin(w * x)
        model.embed.W_E.copy_(W_E)
        mlp.W_in.copy_(W_in)
        mlp.W_out.copy_(W_out)
        model.unembed.W_U.copy_(W_U)
    return model


def fourier_mlp(p: int, ks: list[int], scale: float = 40.0, sub: bool = False) -> MLPModel:
    """The MLP model version: neurons relu(cos(w a + phi) + cos(w b + phi)), W_U reading cos(w(a+b-c)).

    With ``sub``, b's half of W_in reads cos(-w b + phi), so the neurons carry cos(w(a-b) + 2 phi) and the
    model computes (a - b) mod p."""
    nk = len(ks)
    units, d_hidden = _neurons(p, ks)
    cfg = ModelConfig(arch="mlp", d_embed=2 * nk, hidden=[d_hidden], act="relu")
    model = MLPModel(cfg, p)
    x = torch.arange(p, dtype=torch.float64)
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        for i, k in enumerate(ks):
            w = 2 * math.pi * k / p
            model.embed.W_E[:, 2 * i] = torch.cos(w * x)
            model.embed.W_E[:, 2 * i + 1] = torch.sin(w * x)
        W_in = model.blocks[0].mlp.W_in  # [2 * d_embed, d_hidden]: a's embedding, then b's
        for n, (i, phi) in enumerate(units):
            W_in[2 * i, n], W_in[2 * i + 1, n] = math.cos(phi), -math.sin(phi)
            sb = 1.0 if sub else -1.0  # cos(-w b + phi) = cos(w b) cos(phi) + sin(w b) sin(phi)
            W_in[2 * nk + 2 * i, n], W_in[2 * nk + 2 * i + 1, n] = math.cos(phi), sb * math.sin(phi)
            w = 2 * math.pi * ks[i] / p
            model.unembed.W_U[n] = scale * (math.cos(2 * phi) * torch.cos(w * x) - math.sin(2 * phi) * torch.sin(w * x))
    return model


# ---------------------------------------------------------------- the analysis recovers the construction

P, KEYS = 31, [3, 7]


def _logits(model, ds):
    with torch.no_grad():
        return model.forward_last(ds.tokens)


@pytest.fixture(scope="module", params=["transformer", "mlp", "mlp-sub"])
def built(request):
    op = "sub" if request.param == "mlp-sub" else "add"
    ds = make_dataset(op, P)
    model = fourier_transformer(P, KEYS) if request.param == "transformer" else fourier_mlp(P, KEYS, sub=op == "sub")
    train, test = make_split(ds, 0.3, 0)
    return request.param, model, ds, train, test


def test_handbuilt_model_is_exact(built):
    """The construction must be right before anything is asserted about its analysis."""
    _, model, ds, *_ = built
    logits = _logits(model, ds)
    assert (logits.argmax(-1) == ds.labels).all()
    if isinstance(model, Transformer):
        torch.testing.assert_close(model.eq_logits(ds.tokens), logits, atol=1e-4, rtol=1e-5)


def test_key_frequencies_recovered_by_both_methods(built):
    _, model, ds, *_ = built
    na = analyze_neurons(model, ds)
    assert na.defined and na.key_frequencies == KEYS
    assert na.key_frequency_counts == {3: M_PHASES, 7: M_PHASES}
    assert na.embedding_key_frequencies == KEYS
    assert na.agreement.identical and na.agreement.jaccard == 1.0
    assert min(na.neuron_score) > 0.9  # relu(cos A + cos B) keeps ~96% of its variance at its frequency
    assert na.n_clustered == len(KEYS) * M_PHASES
    json.dumps(to_json(na), allow_nan=False)


def test_progress_measures_of_the_construction(built):
    _, model, ds, train, test = built
    rec = progress_measures(model, ds, train, test, KEYS, step=7)
    assert rec.step == 7 and rec.train_acc == 1.0 and rec.test_acc == 1.0
    # the key-frequency part of the logits alone does the task (better: it drops the harmonics)
    assert rec.restricted_loss is not None and rec.restricted_loss <= rec.test_loss + 1e-9
    assert rec.restricted_loss < 0.05 and rec.restricted_loss_test < 0.05
    # without it nothing is left to do the task: far worse than chance, log p
    assert rec.excluded_loss is not None and rec.excluded_loss > 2 * math.log(P)
    assert rec.cos_fraction is not None and rec.cos_fraction > 0.75
    assert rec.trig_fve_logits is not None and rec.trig_fve_logits > 0.75
    # pre-activations are sums of single-token terms: nothing along cos/sin(w(a+b)) before the ReLU
    assert rec.trig_fve_pre is not None and rec.trig_fve_pre < 1e-6
    assert rec.trig_fve_post is not None and rec.trig_fve_post > 0.05
    # W_E and W_L hold exactly two of the 15 frequencies, equally: Gini = 1 - 2/15
    assert rec.gini_embed == pytest.approx(1 - 2 / 15, abs=1e-6)
    assert rec.gini_unembed == pytest.approx(1 - 2 / 15, abs=1e-6)
    assert rec.null_reasons == {}
    # measured with the wrong frequencies, the same model looks like it has no algorithm
    wrong = progress_measures(model, ds, train, test, [1, 2], step=7)
    assert wrong.restricted_loss > math.log(P) - 0.01 and wrong.cos_fraction < 1e-6
    json.dumps(to_json(rec), allow_nan=False)


def test_logit_fourier_norms_sit_on_the_key_blocks(built):
    _, model, ds, *_ = built
    norms = logit_fourier_norms(_logits(model, ds), P)
    norms[0, 0] = 0
    labels = basis_labels(P)
    top = torch.topk(norms.flatten(), 8).indices
    for idx in top.tolist():
        i, j = divmod(idx, P)
        ki, kj = int(labels[i].split()[1]), int(labels[j].split()[1])
        assert ki == kj and ki in KEYS


def test_ablations_of_the_construction(built):
    name, model, ds, _, test = built
    na = analyze_neurons(model, ds)
    rep = ablation_report(model, ds, test, na.key_frequencies, na.cluster_dict(), na.neuron_frequency, n_draws=10, seed=0)
    d = rep
    json.dumps(to_json(d), allow_nan=False)
    assert d.baseline.test_acc == 1.0
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
    assert len(neurons.importance) == len(KEYS) * M_PHASES and min(neurons.importance) > 0
    assert [c.k for c in neurons.clusters] == KEYS
    assert neurons.all_clusters.test_loss == pytest.approx(math.log(P), abs=0.05)
    for c in neurons.clusters:  # one frequency left still answers most inputs
        assert c.size == M_PHASES and c.ablated.test_acc > 0.5
        assert c.random.n_draws == 10
    cum = neurons.cumulative
    assert cum.n_ablated[0] == 0 and cum.test_acc[0] == 1.0 and cum.test_acc[-1] < 0.2
    assert cum.n_to_below_half is not None and 1 <= cum.n_to_below_half <= len(KEYS) * M_PHASES
    assert cum.test_acc[cum.n_to_below_half] < 0.5
    assert all(a >= 0.5 for a in cum.test_acc[: cum.n_to_below_half])
    if name == "transformer":  # the only head carries a and b to `=`
        assert [(h.layer, h.head) for h in d.heads] == [(0, 0)]
        assert d.heads[0].test_acc < 0.2
    else:
        assert d.heads is None and "no attention heads" in d.heads_reason
