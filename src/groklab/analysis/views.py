"""Arrays that figures and the dashboard show, computed from a model state or from records.

Pure functions of tensors and records, like the rest of :mod:`groklab.analysis`; they add only what
the stored analysis records do not hold (activation grids, attention patterns, the plane of one
frequency in embedding space, per-sample losses, per-parameter norms). Conventions as in
:mod:`groklab.analysis.fourier`: inputs in a-major order (index a*p + b), frequencies k = 1..(p-1)//2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from groklab.analysis.basis import Basis
from groklab.analysis.fourier import fourier_basis, freq_rows
from groklab.analysis.neurons import Model
from groklab.analysis.progress import nll
from groklab.models import MLPModel, Transformer, eval_mode
from groklab.records import NeuronAnalysis

__all__ = [
    "attention_patterns",
    "cosine_similarity",
    "embedding_pca",
    "first_stable_index",
    "frequency_plane",
    "main_matrices",
    "parameter_norms",
    "per_sample_losses",
    "pick_steps",
    "representative_neurons",
]


def frequency_plane(W_E_tokens: Tensor, k: int, basis: Basis) -> Tensor:
    """Coordinates [p, 2] of each token's (centred) embedding in the plane of frequency k of the
    task's basis; NaN for tokens outside the structure map (0 under a discrete log).

    The plane is spanned by the directions the embedding gives to cos(w_k x) and sin(w_k x), x =
    phi(token): the rows ``F[2k-1] @ W`` and ``F[2k] @ W`` of the Fourier-transformed embedding (rows
    placed at phi), orthonormalised in that order (axis 0 is the cos direction; axis 1 the sin
    direction with its cos part removed). A model that uses frequency k puts the tokens on a circle
    here, token t at angle w_k phi(t); an embedding with no frequency-k structure gives a cloud.
    Zeros when the plane is degenerate.
    """
    W = W_E_tokens.detach().to(torch.float64)
    order = basis.token_order.to(W.device)
    F = fourier_basis(basis.n, W.device)
    A = F[list(freq_rows(k, basis.n))] @ W[order]  # [1 or 2, d]
    coords = torch.full((W.shape[0], 2), float("nan"), dtype=torch.float64, device=W.device)
    Q, R = torch.linalg.qr(A.T)  # [d, 1 or 2]
    scale = R.diagonal().abs().max()
    if scale == 0:
        coords[order] = 0.0
        return coords
    Q = Q * torch.where(R.diagonal() < 0, -1.0, 1.0)  # keep each axis pointing along its own row
    Q = Q[:, R.diagonal().abs() > 1e-12 * scale]
    inside = W[order]
    coords[order] = torch.nn.functional.pad((inside - inside.mean(0, keepdim=True)) @ Q, (0, 2 - Q.shape[1]))
    return coords


def embedding_pca(W_E_tokens: Tensor, n: int = 4) -> tuple[Tensor, Tensor]:
    """(coordinates [p, n], explained variance fraction [n]) of the tokens' centred embeddings on
    their first ``n`` principal components (by SVD, components in decreasing variance)."""
    W = W_E_tokens.detach().to(torch.float64)
    W = W - W.mean(0, keepdim=True)
    U, S, _ = torch.linalg.svd(W, full_matrices=False)
    n = min(n, S.numel())
    total = S.pow(2).sum()
    frac = S.pow(2)[:n] / total if total > 0 else torch.zeros(n, dtype=torch.float64)
    return U[:, :n] * S[:n], frac


def cosine_similarity(W_E_tokens: Tensor) -> Tensor:
    """Cosine similarity [p, p] between the tokens' centred embeddings (0 for a zero row)."""
    W = W_E_tokens.detach().to(torch.float64)
    W = W - W.mean(0, keepdim=True)
    W = W / W.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return W @ W.T


def attention_patterns(model: Transformer, tokens: Tensor, batch: int = 4096) -> Tensor:
    """Attention patterns of every layer: [n_layers, n, n_heads, query_pos, key_pos] (float32).

    Read from ``hook_pattern`` in the full hooked forward over ``tokens [n, 3]``, in batches.
    The `=` query is query_pos 2; its row over key_pos (a, b, =) sums to 1.
    """
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(len(model.blocks))]
    dev = next(model.parameters()).device
    out: list[list[Tensor]] = [[] for _ in names]
    with eval_mode(model):
        for i in range(0, tokens.shape[0], batch):
            _, cache = model.run_with_cache(tokens[i : i + batch].to(dev), names_filter=names)
            for j, name in enumerate(names):
                out[j].append(cache[name].float().cpu())  # [b, head, q, k]
    return torch.stack([torch.cat(chunks) for chunks in out])


def per_sample_losses(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy (nats, float64) of every row of ``logits [n, p]`` against ``labels [n]``."""
    return nll(logits, labels).cpu()


def first_stable_index(values: np.ndarray, threshold: float) -> np.ndarray:
    """For ``values [T, n]`` (time first): the first t from which column j stays below
    ``threshold`` to the end; T for a column that ends at or above it."""
    below = values < threshold  # [T, n]
    T = values.shape[0]
    # stays below from t on  <=>  all of below[t:] ; reversed cumulative AND
    stays = np.flip(np.logical_and.accumulate(np.flip(below, 0), axis=0), 0)
    return np.where(stays.any(0), stays.argmax(0), T)


def parameter_norms(state: Mapping[str, Tensor]) -> dict[str, float]:
    """Frobenius (L2) norm of every floating-point tensor of a model state dict, by name."""
    return {k: float(v.detach().to(torch.float64).norm()) for k, v in state.items() if v.is_floating_point()}


def main_matrices(model: Model) -> dict[str, Tensor]:
    """The model's main weight matrices as 2-D tables, by TransformerLens-style name.

    Transformer: W_E, W_pos, per layer W_Q, W_K, W_V (heads side by side: [d_model, n_heads*d_head]),
    W_O ([n_heads*d_head, d_model]), W_in, W_out, and W_U. MLP model: W_E, each hidden W_in, W_U.
    """
    out: dict[str, Tensor] = {"W_E": model.embed.W_E.detach()}
    if isinstance(model, Transformer):
        out["W_pos"] = model.pos_embed.W_pos.detach()
        for i, block in enumerate(model.block_list):
            pre = f"blocks.{i}." if len(model.blocks) > 1 else ""
            a = block.attn
            for name in ("W_Q", "W_K", "W_V"):
                W = getattr(a, name).detach()  # [head, d_model, d_head]
                out[pre + name] = W.permute(1, 0, 2).reshape(W.shape[1], -1)
            out[pre + "W_O"] = a.W_O.detach().reshape(-1, a.W_O.shape[-1])
            out[pre + "W_in"] = block.mlp.W_in.detach()
            out[pre + "W_out"] = block.mlp.W_out.detach()
    elif isinstance(model, MLPModel):
        for i, layer in enumerate(model.blocks):
            out[f"blocks.{i}.W_in"] = cast(Any, layer).mlp.W_in.detach()
    out["W_U"] = model.unembed.W_U.detach()
    return out


def representative_neurons(neurons: NeuronAnalysis, per_cluster: int = 2) -> list[tuple[int, int, float]]:
    """[(k, neuron, score)]: the ``per_cluster`` highest-scoring neurons of each cluster, clusters
    ascending in k, neurons by decreasing score."""
    scores = neurons.neuron_score
    out = []
    for c in neurons.clusters:
        members = sorted(c.neurons, key=lambda n: -scores[n])
        out += [(c.k, n, scores[n]) for n in members[:per_cluster]]
    return out


def pick_steps(steps: Sequence[int], n: int, include: Sequence[int | None] = ()) -> list[int]:
    """Up to ``n`` of ``steps`` (ascending): the first, the last, the step nearest each of
    ``include`` (None entries ignored), and the rest spread evenly by index."""
    steps = sorted(steps)
    if len(steps) <= n:
        return steps
    chosen = {steps[0], steps[-1]}
    for s in include:
        if s is not None and len(chosen) < n:
            chosen.add(min(steps, key=lambda x: (abs(x - s), x)))
    for i in np.linspace(0, len(steps) - 1, n).round().astype(int):
        if len(chosen) >= n:
            break
        chosen.add(steps[int(i)])
    return sorted(chosen)
