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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from groklab.analysis.fourier import frequencies, remove_frequencies
from groklab.analysis.neurons import Model, eq_activations
from groklab.analysis.progress import accuracy, cross_entropy
from groklab.data import Dataset
from groklab.models import MLPModel, Transformer, eval_mode
from groklab.models.hooks import one_thread

__all__ = [
    "AblationReport",
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
    """Test accuracy and loss of a copy of ``model`` whose token embeddings lack frequencies ``ks``."""
    m = copy.deepcopy(model)
    with torch.no_grad():  # W_E_tokens is a view of the parameter (the `=` row excluded)
        m.W_E_tokens.copy_(remove_frequencies(m.W_E_tokens, ks))
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


def _stats(x: Tensor) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(_std(x))}


def neuron_ablation(
    model: Model,
    ds: Dataset,
    test_pairs: Tensor | np.ndarray | Sequence[int],
    clusters: dict[int, list[int]],
    neuron_frequency: Sequence[int] | None = None,
    n_draws: int = 10,
    top: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean ablation of the last MLP's neurons at `=`; see the module docstring for the conventions.

    Returns {"baseline", "importance" [d_mlp], "top" (``top`` most important: neuron, frequency,
    delta_loss, test_acc, test_loss), "clusters" (per cluster: k, size, ablated, random acc/loss
    mean and std over ``n_draws`` groups), "all_clusters", "cumulative"}.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    gen = np.random.default_rng(seed)
    with one_thread():
        r = _readout(model, ds, _test_rows(ds, test_pairs))
        d = r.W.shape[0]
        base_acc, base_loss = r.score(r.state)
        assert base_loss is not None
        baseline = {"test_acc": base_acc, "test_loss": base_loss}
        acc1, loss1 = _single_neurons(r)
        importance = loss1 - base_loss
        order = torch.argsort(importance, descending=True, stable=True)
        freq = list(neuron_frequency) if neuron_frequency is not None else [None] * d
        top_rows = [
            {"neuron": int(n), "frequency": freq[int(n)], "delta_loss": float(importance[n])}
            | {"test_acc": float(acc1[n]), "test_loss": float(loss1[n])}
            for n in order[:top]
        ]

        def group(neurons: Sequence[int]) -> dict[str, float]:
            idx = torch.as_tensor(list(neurons), dtype=torch.long, device=r.W.device)
            acc, loss = r.score(r.without(idx), owned=True)
            return {"test_acc": acc, "test_loss": float(loss)}  # type: ignore[arg-type]

        cluster_rows = []
        for k, members in sorted(clusters.items()):
            outside = np.setdiff1d(np.arange(d), members)
            pool = outside if len(outside) >= len(members) else np.arange(d)
            draws = [group(gen.choice(pool, size=len(members), replace=False).tolist()) for _ in range(n_draws)]
            random: dict[str, Any] = {
                "n_draws": n_draws,
                "pool": "outside the cluster" if pool is outside else "all neurons",
            }
            for key in ("test_acc", "test_loss"):
                random[key] = _stats(torch.tensor([x[key] for x in draws], dtype=DTYPE))
            cluster_rows.append({"k": int(k), "size": len(members), "ablated": group(members), "random": random})
        clustered = sorted(n for v in clusters.values() for n in v)
        all_clusters = {"size": len(clustered), **(group(clustered) if clustered else baseline)}
        cumulative = _cumulative(r, order, baseline["test_acc"], gen, n_draws)
    return {
        "baseline": baseline,
        "importance": importance.tolist(),
        "top": top_rows,
        "clusters": cluster_rows,
        "all_clusters": all_clusters,
        "cumulative": cumulative,
    }


def _cumulative(r: _Readout, order: Tensor, base_acc: float, gen: np.random.Generator, n_draws: int) -> dict[str, Any]:
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
    return {
        "order": order.tolist(),
        "n_ablated": counts,
        "test_acc": acc_c.tolist(),
        "loss_n_ablated": grid,
        "test_loss": [loss_c[m] for m in grid],
        "random": {"n_draws": n_draws, "n_ablated": grid}
        | {"test_acc_mean": racc.mean(0).tolist(), "test_acc_std": _std(racc).tolist()}
        | {f"test_acc_{f}": getattr(racc, f)(0).values.tolist() for f in ("min", "max")}
        | {"test_loss_mean": rloss.mean(0).tolist(), "test_loss_std": _std(rloss).tolist()},
        "n_to_below_half": n_below,
        "n_to_below_half_reason": reason,
    }


# ---------------------------------------------------------------- heads


def head_ablation(
    model: Model, ds: Dataset, test_pairs: Tensor | np.ndarray | Sequence[int]
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """([{layer, head, test_acc, test_loss, acc_drop}], None) replacing each head's ``hook_z`` by its
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
                out.append({"layer": layer, "head": h, **s, "acc_drop": 100 * (base["test_acc"] - s["test_acc"])})
    return out, None


# ---------------------------------------------------------------- the report


@dataclass
class AblationReport:
    """Every ablation of one model state (the JSON record ``ablation.json``).

    ``frequency`` is None with ``frequency_reason`` when there are no key frequencies; ``heads``
    is None with ``heads_reason`` for a model without attention heads.
    """

    split: str
    baseline: dict[str, float]  # {"test_acc", "test_loss"}
    key_frequencies: list[int]
    frequency: dict[str, Any] | None
    frequency_reason: str | None
    neurons: dict[str, Any]
    heads: list[dict[str, Any]] | None
    heads_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frequency_ablation(
    model: Model, ds: Dataset, rows: Tensor, keys: list[int], base_acc: float, n_draws: int, seed: int
) -> dict[str, Any]:
    gen = np.random.default_rng(seed)
    key = ablate_frequencies(model, ds, rows, keys)
    others = [k for k in frequencies(ds.p) if k not in keys]
    n = min(len(keys), len(others))
    draws = []
    for _ in range(n_draws if n else 0):
        ks = sorted(int(k) for k in gen.choice(others, size=n, replace=False))
        s = ablate_frequencies(model, ds, rows, ks)
        draws.append({"frequencies": ks, **s, "acc_drop": 100 * (base_acc - s["test_acc"])})
    drops = torch.tensor([d["acc_drop"] for d in draws], dtype=DTYPE)
    return {
        "key": {"frequencies": keys, **key, "acc_drop": 100 * (base_acc - key["test_acc"])},
        "control": {
            "n_frequencies": n,
            "note": None if n == len(keys) else f"only {n} non-key frequencies exist",
            "draws": draws,
            "acc_drop": _stats(drops) if draws else None,
            "test_acc_mean": float(np.mean([d["test_acc"] for d in draws])) if draws else None,
        },
    }


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
) -> AblationReport:
    """Frequency, neuron and head ablations of ``model`` scored on the test split.

    ``clusters`` is {k: neurons} (``NeuronAnalysis.cluster_dict()``); every random choice (control
    frequencies, random groups and orders) comes from ``seed``.
    """
    keys = sorted(set(int(k) for k in key_freqs))
    rows = _test_rows(ds, test_pairs)
    neurons = neuron_ablation(model, ds, test_pairs, clusters, neuron_frequency, n_draws, top, seed)
    base = neurons["baseline"]
    freq, freq_reason = None, None
    if keys:
        freq = _frequency_ablation(model, ds, rows, keys, base["test_acc"], n_draws, seed)
    else:
        freq_reason = "no key frequencies were found"
    heads, heads_reason = head_ablation(model, ds, test_pairs)
    return AblationReport("test", base, keys, freq, freq_reason, neurons, heads, heads_reason)
