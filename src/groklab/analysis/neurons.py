"""Neurons of the last MLP at the `=` position: their frequencies, clusters and the key frequencies.

Conventions (DESIGN section 6), in the task's own basis (:mod:`.basis`; Z_p for add):

- N = post-activations of the last MLP at `=` over the analysed pairs, placed at
  (phi_a(a), phi_b(b)) as a table [n, n, d_mlp], each neuron centred; N^ = its 2-D Fourier transform.
- FVE_k(n) = sum of N^[i, j, n]^2 over (i, j) in {0, rows of k}^2 minus (0, 0), over the sum over
  all (i, j). A neuron's frequency is the argmax over k = 1..n//2, its score the max; a neuron
  with zero variance has score 0 and no frequency.
- A neuron joins the cluster of its frequency when its score is >= 0.85.
- Key frequencies: frequencies whose cluster has at least max(2, 0.01 * d_mlp) members (for
  d_mlp = 512 that is 6), with counts; none (with the reason) when no cluster is that large.
- Embedding key frequencies, reported beside them: frequencies whose embedding norm stands out
  against a shuffled-basis null (above the largest norm of 99 spectra of the same rows placed at
  random) and is >= 1/4 of the largest. A model without Fourier structure has none.
Both lists are ascending in k, and k and n-k are never both listed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from groklab.analysis.basis import Basis, basis_of
from groklab.analysis.fourier import embedding_spectrum, fourier_2d, fourier_basis, freq_norms, freq_rows, n_freqs
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
NULL_DRAWS = 99  # shuffled-basis spectra for the embedding null (a 1% chance that noise stands out)


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


def neuron_fve(table: Tensor) -> Tensor:
    """FVE_k(n) for every neuron and frequency: [d_mlp, n//2] (column k-1 is frequency k).

    ``table`` is [n, n, d_mlp]: post-activations over the analysed pairs at (phi_a(a), phi_b(b))
    (``Basis.table``); each neuron is centred over pairs. For the cos-only k = n/2 of an even n the
    rows are {0, n-1}. A neuron with zero variance gets a row of zeros.
    """
    n = table.shape[0]
    N = table.to(torch.float64)
    N = N - N.mean((0, 1), keepdim=True)
    E = fourier_2d(N).pow(2)  # [n, n, d]
    nf = n_freqs(n)
    group = torch.zeros(n, dtype=torch.long, device=E.device)  # basis row -> frequency (0 = constant)
    for k in range(1, nf + 1):
        group[list(freq_rows(k, n))] = k
    G = torch.nn.functional.one_hot(group, nf + 1).T.to(E.dtype)  # [groups, n]
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


def embedding_null(W_E_tokens: Tensor, basis: Basis, draws: int = NULL_DRAWS, seed: int = 0) -> float:
    """The norm a frequency of the embedding spectrum must exceed to stand out: the largest
    frequency norm over ``draws`` spectra of the same rows placed at random (a shuffled basis).
    Shuffling keeps every row and its norm but breaks any relation between token and coordinate,
    so a model with no Fourier structure has each of its frequencies below this with probability
    about 1 - 1/(draws + 1), all at once (the maximum over frequencies is the statistic)."""
    W = W_E_tokens[basis.token_order.to(W_E_tokens.device)].to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    F = fourier_basis(basis.n, W.device)
    best = 0.0
    for _ in range(draws):
        perm = torch.randperm(basis.n, generator=gen).to(W.device)
        best = max(best, float(freq_norms(F @ W[perm], 0).max()))
    return best


def key_frequencies_from_embedding(spectrum: Tensor, null: float, fraction: float = EMBED_FRACTION) -> list[int]:
    """Frequencies k (ascending) whose norm ``spectrum[k-1]`` exceeds ``null`` (``embedding_null``) and
    is >= ``fraction`` of the largest. A spectrum at the level of the null has none."""
    top = float(spectrum.max()) if spectrum.numel() else 0.0
    keep = (spectrum > null) & (spectrum >= fraction * top)
    return [k + 1 for k in torch.nonzero(keep).flatten().tolist()] if top > 0 else []


def frequency_agreement(by_neurons: list[int], by_embedding: list[int]) -> Agreement:
    """How two key-frequency lists agree: both, only_neurons, only_embedding (ascending),
    jaccard (|A & B| / |A | B|, 1.0 when both are empty) and identical (A == B as sets)."""
    a, b = set(by_neurons), set(by_embedding)
    union = a | b
    return Agreement(sorted(a & b), sorted(a - b), sorted(b - a), len(a & b) / len(union) if union else 1.0, a == b)


def analyze_neurons(model: Model, ds: Dataset, threshold: float = CLUSTER_THRESHOLD) -> NeuronAnalysis:
    """Neuron FVEs, clusters and key frequencies (both methods) of ``model`` on the task ``ds``, in
    the task's own basis. Key frequencies come from the neuron clusters only; a model whose neurons
    form no large enough cluster has none, with the reason (never a fallback)."""
    basis = basis_of(ds)
    d_mlp = int(model.W_L.shape[0])
    out = NeuronAnalysis(
        p=ds.p, basis=basis.record(), d_mlp=d_mlp, threshold=threshold, min_cluster_size=min_cluster_size(d_mlp),
        defined=False, reason=basis.table_reason, neuron_frequency=[], neuron_score=[], fve=[], clusters=[],
        n_clustered=0, key_frequencies=[], key_frequency_counts={}, key_frequencies_reason=basis.table_reason,
        embedding_norms=None, embedding_null=None, embedding_key_frequencies=[], embedding_reason=basis.token_reason,
        agreement=frequency_agreement([], []),
    )  # fmt: skip
    if basis.token_reason is None:
        _embedding_keys(out, model.W_E_tokens.detach(), basis)
    if basis.table_reason is None:
        _neuron_keys(out, model, ds, basis)
    out.agreement = frequency_agreement(out.key_frequencies, out.embedding_key_frequencies)
    return out


def _embedding_keys(out: NeuronAnalysis, W_E_tokens: Tensor, basis: Basis) -> None:
    spectrum = embedding_spectrum(W_E_tokens, basis)
    out.embedding_norms, out.embedding_null = spectrum.tolist(), embedding_null(W_E_tokens, basis)
    out.embedding_key_frequencies = key_frequencies_from_embedding(spectrum, out.embedding_null)
    if not out.embedding_key_frequencies:
        out.embedding_reason = (
            f"no frequency of the embedding stands out: the largest norm {float(spectrum.max()):.3g} is within "
            f"the largest of {NULL_DRAWS} shuffled-basis spectra ({out.embedding_null:.3g})"
        )


def _neuron_keys(out: NeuronAnalysis, model: Model, ds: Dataset, basis: Basis) -> None:
    _, post, _ = eq_activations(model, ds.tokens)
    fve = neuron_fve(basis.table(post[basis.rows.to(post.device)].cpu()))
    freq, score = neuron_frequencies(fve)
    clusters = frequency_clusters(freq, score, out.threshold)
    keys = key_frequencies_from_clusters(clusters, out.d_mlp)
    out.defined, out.reason = True, None
    out.neuron_frequency, out.neuron_score, out.fve = freq.tolist(), score.tolist(), fve.tolist()
    out.clusters = [Cluster(k, len(v), v) for k, v in clusters.items()]
    out.n_clustered = sum(len(v) for v in clusters.values())
    out.key_frequencies, out.key_frequency_counts = [k for k, _ in keys], dict(keys)
    out.key_frequencies_reason = None
    if not keys:
        largest = max(((len(v), k) for k, v in clusters.items()), default=None)
        seen = (
            f"the largest has {largest[0]} (k = {largest[1]})" if largest else f"no neuron has FVE >= {out.threshold}"
        )
        out.key_frequencies_reason = (
            f"no neuron cluster has at least {out.min_cluster_size:g} members ({seen}): "
            "the model shows no Fourier structure in its neurons"
        )
