"""Neurons of the last MLP at the `=` position: their frequencies, clusters and the key frequencies.

Conventions (DESIGN section 6):

- N = post-activations of the last MLP at `=` for all p^2 inputs (a-major), [p*p, d_mlp], each
  neuron centred over inputs; N^ = its 2-D Fourier transform [p, p, d_mlp] (see ``fourier``).
- FVE_k(n) = sum of N^[i, j, n]^2 over (i, j) in {0, 2k-1, 2k}^2 minus (0, 0), over the sum over
  all (i, j). A neuron's frequency is the argmax over k = 1..(p-1)//2, its score the max; a neuron
  with zero variance has score 0 and no frequency.
- A neuron joins the cluster of its frequency when its score is >= 0.85.
- Key frequencies: frequencies whose cluster has at least max(2, 0.01 * d_mlp) members (for
  d_mlp = 512 that is 6), with counts. Also: frequencies whose embedding norm is >= 1/4 of the
  largest. Both lists are ascending in k, and k and p-k are never both listed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from groklab.analysis.fourier import embedding_spectrum, fourier_2d, n_freqs
from groklab.data import Dataset
from groklab.models import MLPModel, Transformer, eval_mode
from groklab.models.hooks import HookPoint
from groklab.records import Agreement, Cluster, NeuronAnalysis

__all__ = [
    "CLUSTER_THRESHOLD",
    "Model",
    "EMBED_FRACTION",
    "analyze_neurons",
    "eq_activations",
    "frequency_agreement",
    "frequency_clusters",
    "key_frequencies_from_clusters",
    "key_frequencies_from_embedding",
    "min_cluster_size",
    "neuron_fve",
    "neuron_frequencies",
]

CLUSTER_THRESHOLD = 0.85
Model = Transformer | MLPModel  # both expose neuron_hooks, W_E_tokens, W_L, forward_last, hooks
EMBED_FRACTION = 0.25


def eq_activations(model: Model, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(pre, post, logits) of the last MLP at the `=` position: [n, d_mlp], [n, d_mlp], [n, p].

    Runs the fast `=`-only path (``forward_last``) with hooks on ``model.neuron_hooks``; if those
    hooks did not see exactly one `=`-only activation there, falls back to the full hooked forward
    and reads position -1. Eval mode and no grad for the call; the model's mode is restored.
    """
    pre_name, post_name = model.neuron_hooks
    seen: dict[str, list[Tensor]] = {pre_name: [], post_name: []}

    def save(x: Tensor, hp: HookPoint) -> None:
        seen[hp.name].append(x.detach())

    n = tokens.shape[0]
    with eval_mode(model):
        tokens = tokens.to(next(model.parameters()).device)
        with model.hooks([(pre_name, save), (post_name, save)]):
            logits = model.forward_last(tokens)
        if all(len(v) == 1 and v[0].shape[:1] == (n,) and v[0].ndim == 2 for v in seen.values()):
            return seen[pre_name][0], seen[post_name][0], logits.detach()
        out, cache = model.run_with_cache(tokens, names_filter=[pre_name, post_name])
        pre, post = cache[pre_name], cache[post_name]
        if pre.ndim == 3:  # [batch, pos, d_mlp]
            pre, post, out = pre[:, -1], post[:, -1], out[:, -1]
        return pre, post, out.detach()


def neuron_fve(post: Tensor, p: int) -> Tensor:
    """FVE_k(n) for every neuron and frequency: [d_mlp, (p-1)//2] (column k-1 is frequency k).

    ``post`` is [p*p, d_mlp] over all inputs in a-major order; each neuron is centred over inputs.
    A neuron with zero variance gets a row of zeros.
    """
    if post.shape[0] != p * p:
        raise ValueError(f"neuron_fve needs all p^2 = {p * p} inputs, got {post.shape[0]}")
    N = post.to(torch.float64)
    N = N - N.mean(0, keepdim=True)
    E = fourier_2d(N.reshape(p, p, -1)).pow(2)  # [p, p, d]
    nf = n_freqs(p)
    # group the basis rows: 0 = constant, k = frequency k, nf + 1 = cos(pi x) for even p (no frequency)
    group = torch.zeros(p, dtype=torch.long, device=E.device)
    for k in range(1, nf + 1):
        group[2 * k - 1 : 2 * k + 1] = k
    if p % 2 == 0:
        group[p - 1] = nf + 1
    G = torch.nn.functional.one_hot(group, nf + 2).T.to(E.dtype)  # [groups, p]
    blocks = torch.einsum("gi,ijn,hj->ghn", G, E, G)  # [groups, groups, d]: energy per block of rows/cols
    ks = torch.arange(1, nf + 1, device=E.device)
    inside = blocks[0, ks] + blocks[ks, 0] + blocks[ks, ks]  # [nf, d]; block (0, 0) is left out
    total = E.sum((0, 1))
    fve = torch.where(total > 0, inside / total.clamp_min(torch.finfo(E.dtype).tiny), torch.zeros_like(inside))
    return fve.T.contiguous()


def neuron_frequencies(fve: Tensor) -> tuple[Tensor, Tensor]:
    """(frequency [d_mlp] long, score [d_mlp]) from ``fve [d_mlp, n_freq]``.

    Frequency = 1 + argmax over columns (so values are k in 1..(p-1)//2), 0 for a neuron whose
    FVE row is all zero (zero variance); score = the max.
    """
    score, idx = fve.max(1)
    return torch.where(score > 0, idx + 1, torch.zeros_like(idx)), score


def frequency_clusters(freq: Tensor, score: Tensor, threshold: float = CLUSTER_THRESHOLD) -> dict[int, list[int]]:
    """{k: ascending neuron indices} of neurons with frequency k and score >= ``threshold``.

    Keys ascend; frequencies with no member are absent.
    """
    out: dict[int, list[int]] = {}
    for n in torch.nonzero((score >= threshold) & (freq > 0)).flatten().tolist():
        out.setdefault(int(freq[n]), []).append(n)
    return dict(sorted(out.items()))


def min_cluster_size(d_mlp: int) -> float:
    """Members a cluster needs to make its frequency key: max(2, 0.01 * d_mlp) (compared with >=)."""
    return max(2.0, 0.01 * d_mlp)


def key_frequencies_from_clusters(clusters: dict[int, list[int]], d_mlp: int) -> list[tuple[int, int]]:
    """[(k, count)] ascending in k for clusters with count >= max(2, 0.01 * d_mlp)."""
    need = min_cluster_size(d_mlp)
    return [(k, len(v)) for k, v in sorted(clusters.items()) if len(v) >= need]


def key_frequencies_from_embedding(spectrum: Tensor, fraction: float = EMBED_FRACTION) -> list[int]:
    """Frequencies k (ascending) whose norm ``spectrum[k-1]`` is >= ``fraction`` of the largest.

    An all-zero spectrum has no key frequencies.
    """
    top = float(spectrum.max()) if spectrum.numel() else 0.0
    if top <= 0:
        return []
    return [k + 1 for k in torch.nonzero(spectrum >= fraction * top).flatten().tolist()]


def frequency_agreement(by_neurons: list[int], by_embedding: list[int]) -> Agreement:
    """How two key-frequency lists agree: both, only_neurons, only_embedding (ascending),
    jaccard (|A & B| / |A | B|, 1.0 when both are empty) and identical (A == B as sets)."""
    a, b = set(by_neurons), set(by_embedding)
    union = a | b
    return Agreement(sorted(a & b), sorted(a - b), sorted(b - a), len(a & b) / len(union) if union else 1.0, a == b)


def analyze_neurons(model: Model, ds: Dataset, threshold: float = CLUSTER_THRESHOLD) -> NeuronAnalysis:
    """Neuron FVEs, clusters and key frequencies (both methods) of ``model`` on the task ``ds``.

    Needs every one of the p^2 pairs (``ds.n == p * p``); otherwise only the embedding-based list
    is computed. For operations without additive structure the Fourier basis of Z_p is not the
    expected basis of the algorithm; the numbers are still what they are, and ``note`` says so.
    """
    from groklab.data import OPERATIONS

    p = ds.p
    spectrum = embedding_spectrum(model.W_E_tokens.detach())
    by_embed = key_frequencies_from_embedding(spectrum)
    d_mlp = int(model.W_L.shape[0])
    note = None
    if OPERATIONS[ds.op].additive is None:
        note = (
            f"operation {ds.op!r} is not additive: the Fourier basis of Z_p is not its natural basis "
            "(a discrete-log basis would be), so few neurons are expected to cluster"
        )
    common = dict(p=p, d_mlp=d_mlp, threshold=threshold, min_cluster_size=min_cluster_size(d_mlp))
    if ds.n != p * p:
        return NeuronAnalysis(
            **common,  # type: ignore[arg-type]
            defined=False,
            reason=f"operation {ds.op!r} leaves {p * p - ds.n} of the p^2 pairs undefined, so neuron "
            "activations do not form a full p x p table and have no 2-D Fourier transform",
            neuron_frequency=[],
            neuron_score=[],
            fve=[],
            clusters=[],
            n_clustered=0,
            key_frequencies=[],
            key_frequency_counts={},
            embedding_norms=spectrum.tolist(),
            embedding_key_frequencies=by_embed,
            agreement=frequency_agreement([], by_embed),
            note=note,
        )
    _, post, _ = eq_activations(model, ds.tokens)
    fve = neuron_fve(post.cpu(), p)
    freq, score = neuron_frequencies(fve)
    clusters = frequency_clusters(freq, score, threshold)
    keys = key_frequencies_from_clusters(clusters, d_mlp)
    return NeuronAnalysis(
        **common,  # type: ignore[arg-type]
        defined=True,
        reason=None,
        neuron_frequency=freq.tolist(),
        neuron_score=score.tolist(),
        fve=fve.tolist(),
        clusters=[Cluster(k, len(v), v) for k, v in clusters.items()],
        n_clustered=sum(len(v) for v in clusters.values()),
        key_frequencies=[k for k, _ in keys],
        key_frequency_counts=dict(keys),
        embedding_norms=spectrum.tolist(),
        embedding_key_frequencies=by_embed,
        agreement=frequency_agreement([k for k, _ in keys], by_embed),
        note=note,
    )
