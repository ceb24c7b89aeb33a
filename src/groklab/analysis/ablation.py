"""Ablations of a trained model, scored on the test split (DESIGN section 6, "Ablations").

- Frequency ablation: remove the key frequencies from the token rows of W_E (project each column
  onto the orthogonal complement of their cos and sin rows of F); control: as many random non-key
  frequencies, ``n_draws`` seeded draws.
- Neuron (mean) ablation: a neuron's post-activation at `=` is replaced by its mean over all valid
  inputs. Importance of a neuron = rise in test loss when it alone is ablated. Groups: each
  frequency cluster, random groups of the same size drawn from the neurons outside that cluster
  (``n_draws`` draws), and the cumulative curve of ablating neurons in order of importance
  (most important first) against random orders.
- Head ablation (transformer only): a head's output ``hook_z`` is replaced by its mean over all
  valid inputs (per position).

Accuracy drops are reported in percentage points: 100 * (baseline acc - ablated acc).

Speed: neuron ablations do not rerun the model. The last MLP's post-activations at `=` and the
state they feed are cached once; when the readout after the last MLP is affine (no final
LayerNorm, always true for the MLP model) an ablation is a low-rank update of the logits through
W_L, otherwise of the residual stream through W_out followed by the final LayerNorm and unembedding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from groklab.analysis.basis import basis_of
from groklab.analysis.fourier import remove_frequencies
from groklab.analysis.neurons import Model, eq_activations
from groklab.analysis.progress import accuracy, cross_entropy
from groklab.data import Dataset
from groklab.models import MLPModel, Transformer, eval_mode
from groklab.models.hooks import one_thread
from groklab.records import (
    AblationReport,
    ClusterAblation,
    ControlAblation,
    CumulativeAblation,
    FrequencyAblation,
    FrequencyDraw,
    GroupAblation,
    HeadAblation,
    NeuronAblation,
    NeuronRow,
    RandomCurve,
    RandomGroups,
    Score,
    Spread,
)

__all__ = [
    "ablate_frequencies",
    "ablation_report",
    "head_ablation",
    "neuron_ablation",
]

DTYPE = torch.float64
CDTYPE = torch.float32  # cached states for neuron ablations (losses stay precise, see _score_inplace)


def _score(logits: Tensor, labels: Tensor) -> dict[str, float]:
    return {"test_acc": accuracy(logits, labels), "test_loss": cross_entropy(logits, labels)}


def _test_rows(ds: Dataset, test_pairs: Tensor | np.ndarray | Sequence[int]) -> Tensor:
    return ds.rows(torch.as_tensor(np.asarray(test_pairs), dtype=torch.long))


# ---------------------------------------------------------------- frequency ablation


def ablate_frequencies(model: Model, ds: Dataset, test_rows: Tensor, ks: Sequence[int]) -> dict[str, float]:
    """Test accuracy and loss of a copy of ``model`` whose token embeddings lack frequencies ``ks``
    (in the task's basis: see ``fourier.remove_frequencies``), scored on ``test_rows`` of ``ds``."""
    m = copy.deepcopy(model)
    with torch.no_grad():  # W_E_tokens is a view of the parameter (the `=` row excluded)
        m.W_E_tokens.copy_(remove_frequencies(m.W_E_tokens, ks, basis_of(ds)))
    with eval_mode(m):
        dev = next(m.parameters()).device
        logits = m.forward_last(ds.tokens[test_rows].to(dev))
    return _score(logits, ds.labels[test_rows].to(dev))


# ---------------------------------------------------------------- neuron ablation


def _score_inplace(z: Tensor, labels: Tensor, loss: bool = True) -> tuple[float, float | None]:
    """(accuracy, mean cross-entropy or None) of logits ``z [n, p]``, which this overwrites.

    The loss is max - logit[label] + log1p(sum of exp(logit - max) over the other answers), the sum
    in z's dtype and the rest in float64: losses as small as 1e-12 keep their relative precision
    even for float32 logits (a float32 log_softmax would round them to 0). In place, one buffer:
    the neuron ablations call this thousands of times on [n_test, p] tables.
    """
    top, arg = z.max(-1, keepdim=True)
    acc = float((arg.squeeze(-1) == labels).to(DTYPE).mean())
    if not loss:
        return acc, None
    gap = (top - z.gather(-1, labels.unsqueeze(-1))).squeeze(-1).to(DTYPE)
    rest = z.sub_(top).exp_().scatter_(-1, arg, 0.0).sum(-1).to(DTYPE)
    return acc, float((gap + torch.log1p(rest)).mean())


@dataclass
class _Readout:
    """How the test logits depend on the last MLP's post-activations at `=` (float32, see below).

    ``state`` [n, r] is what the neurons write into (the logits when ``head`` is None, i.e. the
    readout is affine; else the residual stream after the last MLP, mapped to logits by ``head``),
    ``W`` [d_mlp, r] how they write, ``DT`` [d_mlp, n] = (mean - post)^T, the change of each neuron
    under mean ablation. Ablating a set S adds DT[S]^T @ W[S] to the state.
    """

    state: Tensor
    W: Tensor
    DT: Tensor
    head: Callable[[Tensor], Tensor] | None
    labels: Tensor

    def score(self, state: Tensor, loss: bool = True, owned: bool = False) -> tuple[float, float | None]:
        """Score a state; ``owned`` states may be overwritten."""
        if self.head is not None:
            state = self.head(state)
        elif loss and not owned:
            state = state.clone()
        return _score_inplace(state, self.labels, loss)

    def without(self, neurons: Tensor) -> Tensor:
        """A new state with ``neurons`` mean-ablated."""
        return torch.addmm(self.state, self.DT[neurons].T, self.W[neurons])


def _readout(model: Model, ds: Dataset, rows: Tensor) -> _Readout:
    """Cache what neuron ablations need, in float32 (losses stay precise, see ``_score_inplace``)."""
    dev = next(model.parameters()).device
    _, post_all, logits_all = eq_activations(model, ds.tokens)
    rows = rows.to(dev)
    labels = ds.labels.to(dev)[rows]
    mean = post_all.to(DTYPE).mean(0)
    DT = (mean - post_all[rows].to(DTYPE)).T.contiguous().to(CDTYPE)
    if isinstance(model, MLPModel) or (isinstance(model, Transformer) and isinstance(model.ln_final, nn.Identity)):
        W = model.W_L.detach().to(CDTYPE)
        return _Readout(logits_all[rows].to(CDTYPE), W, DT, None, labels)
    if not isinstance(model, Transformer):
        raise TypeError(f"neuron ablation does not know how to read out {type(model).__name__}")
    last = len(model.blocks) - 1
    name = f"blocks.{last}.hook_resid_post"
    with eval_mode(model):
        _, cache = model.run_with_cache(ds.tokens[rows.cpu()].to(dev), names_filter=[name])
    state = cache[name][:, -1].to(CDTYPE)
    W = model.block_list[last].mlp.W_out.detach().to(CDTYPE)
    ln, unembed = copy.deepcopy(model.ln_final).to(CDTYPE), copy.deepcopy(model.unembed).to(CDTYPE)

    def head(s: Tensor) -> Tensor:
        with torch.no_grad():
            return unembed(ln(s))

    return _Readout(state, W, DT, head, labels)


def _single_neurons(r: _Readout) -> tuple[Tensor, Tensor]:
    """(acc [d_mlp], loss [d_mlp]) with each neuron mean-ablated alone: one rank-1 update each."""
    d = r.W.shape[0]
    acc, loss = torch.zeros(d, dtype=DTYPE), torch.zeros(d, dtype=DTYPE)
    buf = torch.empty_like(r.state)
    for j in range(d):
        torch.addr(r.state, r.DT[j], r.W[j], out=buf)
        acc[j], loss[j] = r.score(buf, owned=True)  # type: ignore[assignment]
    return acc, loss


def _curve(
    r: _Readout, order: Tensor, counts: Sequence[int], loss_at: set[int] | None = None
) -> tuple[Tensor, dict[int, float]]:
    """Accuracy [len(counts)] after mean-ablating the first m neurons of ``order`` for each m in
    ``counts`` (ascending), and the loss {m: loss} for m in ``loss_at`` (default: every count)."""
    want = set(counts) if loss_at is None else loss_at
    state, done = r.state.clone(), 0
    accs = torch.zeros(len(counts), dtype=DTYPE)
    losses: dict[int, float] = {}
    for i, m in enumerate(counts):
        if m == done + 1:
            state.addr_(r.DT[order[done]], r.W[order[done]])
        elif m > done:
            idx = order[done:m]
            state.addmm_(r.DT[idx].T, r.W[idx])
        done = max(done, m)
        acc, loss = r.score(state, loss=m in want)
        accs[i] = acc
        if loss is not None:
            losses[m] = loss
    return accs, losses


def _grid(d: int, n: int = 24) -> list[int]:
    """About ``n`` neuron counts from 0 to d, denser at the start (where single neurons matter)."""
    pts = set(np.unique(np.round(np.geomspace(1, d, n)).astype(int)).tolist()) | {0, d}
    pts |= set(np.linspace(0, d, n // 2).round().astype(int).tolist())
    return sorted(int(x) for x in pts)


def _std(x: Tensor) -> Tensor:  # sample std over dim 0; 0 for a single draw
    return x.std(0, correction=1 if x.shape[0] > 1 else 0)


def _spread(x: Tensor) -> Spread:
    return Spread(float(x.mean()), float(_std(x)))


def neuron_ablation(
    model: Model,
    ds: Dataset,
    test_pairs: Tensor | np.ndarray | Sequence[int],
    clusters: dict[int, list[int]],
    neuron_frequency: Sequence[int] | None = None,
    n_draws: int = 10,
    top: int = 20,
    seed: int = 0,
) -> NeuronAblation:
    """Mean ablation of the last MLP's neurons at `=`; see the module docstring for the conventions:
    single neurons (importance, the ``top`` most important), each cluster against ``n_draws``
    random groups of its size, all clusters at once, and the cumulative curve."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    gen = np.random.default_rng(seed)
    with one_thread():
        r = _readout(model, ds, _test_rows(ds, test_pairs))
        d = r.W.shape[0]
        base_acc, base_loss = r.score(r.state)
        assert base_loss is not None
        acc1, loss1 = _single_neurons(r)
        importance = loss1 - base_loss
        order = torch.argsort(importance, descending=True, stable=True)
        freq = list(neuron_frequency) if neuron_frequency is not None else [None] * d
        top_rows = [
            NeuronRow(int(n), freq[int(n)], float(importance[n]), float(acc1[n]), float(loss1[n])) for n in order[:top]
        ]
        cluster_rows = [_cluster_ablation(r, k, members, gen, n_draws) for k, members in sorted(clusters.items())]
        clustered = sorted(n for v in clusters.values() for n in v)
        all_clusters = GroupAblation(len(clustered), *(_group(r, clustered) if clustered else (base_acc, base_loss)))
        cumulative = _cumulative(r, order, base_acc, gen, n_draws)
    return NeuronAblation(
        Score(base_acc, base_loss), importance.tolist(), top_rows, cluster_rows, all_clusters, cumulative
    )


def _group(r: _Readout, neurons: Sequence[int]) -> tuple[float, float]:
    """(test acc, test loss) with ``neurons`` mean-ablated together."""
    idx = torch.as_tensor(list(neurons), dtype=torch.long, device=r.W.device)
    acc, loss = r.score(r.without(idx), owned=True)
    assert loss is not None
    return acc, float(loss)


def _cluster_ablation(
    r: _Readout, k: int, members: list[int], gen: np.random.Generator, n_draws: int
) -> ClusterAblation:
    """A cluster ablated together, against ``n_draws`` random groups of its size from outside it
    (from all neurons when fewer remain outside)."""
    d = r.W.shape[0]
    outside = np.setdiff1d(np.arange(d), members)
    pool = outside if len(outside) >= len(members) else np.arange(d)
    draws = torch.tensor(
        [_group(r, gen.choice(pool, size=len(members), replace=False).tolist()) for _ in range(n_draws)], dtype=DTYPE
    )
    where = "outside the cluster" if pool is outside else "all neurons"
    random = RandomGroups(n_draws, where, _spread(draws[:, 0]), _spread(draws[:, 1]))
    return ClusterAblation(int(k), len(members), Score(*_group(r, members)), random)


def _cumulative(
    r: _Readout, order: Tensor, base_acc: float, gen: np.random.Generator, n_draws: int
) -> CumulativeAblation:
    """Accuracy at every count in importance order, loss on a grid; ``n_draws`` random orders on the grid."""
    d = r.W.shape[0]
    counts, grid = list(range(d + 1)), _grid(d)
    acc_c, loss_c = _curve(r, order, counts, loss_at=set(grid))
    rand = [_curve(r, torch.as_tensor(gen.permutation(d), device=r.W.device), grid) for _ in range(n_draws)]
    racc = torch.stack([a for a, _ in rand])  # [draws, len(grid)]
    rloss = torch.tensor([[lo[m] for m in grid] for _, lo in rand], dtype=DTYPE)
    below = torch.nonzero(acc_c < 0.5).flatten()
    n_below, reason = None, None
    if base_acc < 0.5:
        reason = "baseline test accuracy is already below 50%"
    elif below.numel() == 0:
        reason = "ablating every neuron leaves test accuracy at or above 50%"
    else:
        n_below = int(below[0])
    random = RandomCurve(
        n_draws, grid, racc.mean(0).tolist(), _std(racc).tolist(), racc.min(0).values.tolist(),
        racc.max(0).values.tolist(), rloss.mean(0).tolist(), _std(rloss).tolist(),
    )  # fmt: skip
    test_loss = [loss_c[m] for m in grid]
    return CumulativeAblation(order.tolist(), counts, acc_c.tolist(), grid, test_loss, random, n_below, reason)


# ---------------------------------------------------------------- heads


def head_ablation(
    model: Model, ds: Dataset, test_pairs: Tensor | np.ndarray | Sequence[int]
) -> tuple[list[HeadAblation] | None, str | None]:
    """([HeadAblation(layer, head, test_acc, test_loss, acc_drop)], None) replacing each head's ``hook_z`` by its
    mean over all valid inputs (per position); (None, reason) for a model without attention heads.

    Heads of the last layer matter only at `=`: their ablation is recomputed from the cached
    residual stream there (attention output changed by (mean z - z) @ W_O[h], then MLP and
    unembedding); heads of earlier layers rerun the hooked forward pass.
    """
    if not isinstance(model, Transformer):
        return None, f"{type(model).__name__} has no attention heads"
    rows = _test_rows(ds, test_pairs)
    dev = next(model.parameters()).device
    last = len(model.blocks) - 1
    names = [f"blocks.{i}.attn.hook_z" for i in range(last + 1)]
    mid = f"blocks.{last}.hook_resid_mid"
    out = []
    with eval_mode(model):
        _, cache = model.run_with_cache(ds.tokens.to(dev), names_filter=[*names, mid])
        tokens, labels = ds.tokens[rows].to(dev), ds.labels[rows].to(dev)
        block = model.block_list[last]
        resid = cache[mid][rows.to(dev), -1]  # [n, d_model] at `=`
        z_eq = cache[names[last]][rows.to(dev), -1]  # [n, head, d_head]
        base = _score(model.unembed(model.ln_final(block.finish(resid))), labels)
        for layer, name in enumerate(names):
            mean = cache[name].mean(0)  # [pos, head, d_head]
            for h in range(mean.shape[1]):
                if layer == last:
                    delta = (mean[-1, h] - z_eq[:, h]) @ block.attn.W_O[h]
                    logits = model.unembed(model.ln_final(block.finish(resid + delta)))
                else:

                    def fn(z: Tensor, hp: Any, h: int = h, mean: Tensor = mean) -> Tensor:
                        z = z.clone()
                        z[:, :, h] = mean[: z.shape[1], h]
                        return z

                    logits = model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])[:, -1]
                s = _score(logits, labels)
                drop = 100 * (base["test_acc"] - s["test_acc"])
                out.append(HeadAblation(layer, h, s["test_acc"], s["test_loss"], drop))
    return out, None


# ---------------------------------------------------------------- the report


def _frequency_ablation(
    model: Model, ds: Dataset, test_rows: Tensor, keys: list[int], n_draws: int, seed: int
) -> FrequencyAblation:
    """Key frequencies and ``n_draws`` random non-key draws of as many, removed from W_E in the task's
    basis, scored on the analysed test pairs (for mul/div the zero row and column, outside the
    group, are left out: removing frequencies cannot touch them)."""
    basis = basis_of(ds)
    analysed = torch.zeros(ds.n, dtype=torch.bool)
    analysed[basis.rows.cpu()] = True
    rows = test_rows[analysed[test_rows.cpu()].to(test_rows.device)]
    base = ablate_frequencies(model, ds, rows, [])
    gen = np.random.default_rng(seed)

    def draw(ks: list[int]) -> FrequencyDraw:
        s = ablate_frequencies(model, ds, rows, ks)
        return FrequencyDraw(ks, s["test_acc"], s["test_loss"], 100 * (base["test_acc"] - s["test_acc"]))

    others = [k for k in basis.frequencies if k not in keys]
    n = min(len(keys), len(others))
    draws = [
        draw(sorted(int(k) for k in gen.choice(others, size=n, replace=False))) for _ in range(n_draws if n else 0)
    ]
    drops = torch.tensor([d.acc_drop for d in draws], dtype=DTYPE)
    control = ControlAblation(
        n_frequencies=n,
        note=None if n == len(keys) else f"only {n} non-key frequencies exist",
        draws=draws,
        acc_drop=_spread(drops) if draws else None,
        test_acc_mean=float(np.mean([d.test_acc for d in draws])) if draws else None,
    )
    pairs = f"{len(rows)} of {len(test_rows)} test pairs (those in the {basis.kind} basis)"
    return FrequencyAblation(Score(base["test_acc"], base["test_loss"]), pairs, draw(keys), control)


def ablation_report(
    model: Model,
    ds: Dataset,
    test_pairs: Tensor | np.ndarray | Sequence[int],
    key_freqs: Sequence[int],
    clusters: dict[int, list[int]],
    neuron_frequency: Sequence[int] | None = None,
    n_draws: int = 10,
    top: int = 20,
    seed: int = 0,
    keys_reason: str | None = None,
) -> AblationReport:
    """Frequency, neuron and head ablations of ``model`` scored on the test split.

    ``clusters`` is {k: neurons} (``NeuronAnalysis.cluster_dict()``); every random choice (control
    frequencies, random groups and orders) comes from ``seed``. Without key frequencies (or without
    a one-to-one structure map) the frequency ablation is None with the reason (``keys_reason``).
    """
    basis = basis_of(ds)
    keys = sorted(set(int(k) for k in key_freqs))
    neurons = neuron_ablation(model, ds, test_pairs, clusters, neuron_frequency, n_draws, top, seed)
    freq, freq_reason = None, basis.token_reason
    if freq_reason is None and not keys:
        freq_reason = keys_reason or "no key frequencies were found"
    if freq_reason is None:
        freq = _frequency_ablation(model, ds, _test_rows(ds, test_pairs), keys, n_draws, seed)
    heads, heads_reason = head_ablation(model, ds, test_pairs)
    return AblationReport(
        "test", basis.record(), neurons.baseline, keys, freq, freq_reason, neurons, heads, heads_reason
    )
