"""The average gradient outer product (AGOP; Radhakrishnan et al., Mallinar et al. 2024).

With the input as one-hot x = [e_a; e_b] in R^{2p} (token rows of W_E applied as x @ W_E),
J = d logits / d x in R^{p x 2p} and AGOP = mean over pairs of J^T J (DESIGN section 6). Since
x_i = e_t @ W_E + W_pos[i], J's a-columns are G_0 @ W_E^T with G_0 = d logits / d x_0 [p, d]; so

    AGOP = W (mean over pairs of sum_c g_c g_c^T) W^T,   g_c = [d logit_c/d x_0; d logit_c/d x_1],

W = blockdiag(W_E, W_E): a [2d, 2d] moment, then two products. Blocks a-a, b-b and a-b are read in
phi order (token t at phi(t); discrete-log order for mul) and their circulant fraction is
||C(M')||^2 / ||M'||^2 with M' the block with its main diagonal removed and C averaging each
wrap-around diagonal: 1 for an exactly circulant block. A model whose logits depend on a + b only
gives exactly circulant blocks over all pairs (tests/analysis/test_lenses.py). Its symmetry is
(phi_a, phi_b) -> (phi_a + s, phi_b - s), so the a-b block is circulant with b's columns in
reversed phi order (column j holds the token with phi_b = -j mod n); the a-a and b-b blocks use
plain phi order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from groklab.analysis.basis import Basis, _order
from groklab.analysis.clock import InputLogits, input_logits
from groklab.data import Dataset
from groklab.models import MLPModel, Transformer, eval_mode
from groklab.records.lenses import AgopFractions

__all__ = ["agop", "agop_split", "agop_fractions", "circulant_fraction", "model_agop"]

CHUNK = 512  # pairs per batched backward


def agop(fn: InputLogits, a: Tensor, b: Tensor) -> Tensor:
    """The AGOP over the pairs ``(a, b)`` [N] with respect to the one-hot inputs: [2p, 2p]
    (rows/columns: a's tokens 0..p-1, then b's), in float64."""
    return agop_split(fn, a, b, torch.ones(len(a), dtype=torch.bool))[0]


def agop_split(fn: InputLogits, a: Tensor, b: Tensor, part: Tensor) -> tuple[Tensor, Tensor]:
    """The AGOP over all pairs and over those where ``part`` [N] (bool) is True, from the same
    gradients: ``(all, part)``."""
    moments = _moments(fn, a, b, part)
    W = torch.block_diag(fn.W_E, fn.W_E).to(torch.float64)  # [2p, 2d]
    whole = W @ ((moments[0] + moments[1]) / len(a)) @ W.T
    return whole, W @ (moments[0] / max(int(part.sum()), 1)) @ W.T


def _moments(fn: InputLogits, a: Tensor, b: Tensor, part: Tensor) -> tuple[Tensor, Tensor]:
    """Sums of g g^T over the pairs in ``part`` and over the rest, g = d logit_c / d [x0; x1]
    for every class c: two [2d, 2d] float64 sums."""
    d = fn.W_E.shape[1]
    inside, outside = (torch.zeros(2 * d, 2 * d, dtype=torch.float64) for _ in range(2))
    for start in range(0, len(a), CHUNK):
        sl = slice(start, start + CHUNK)
        x0, x1 = (x.detach().clone().requires_grad_(True) for x in fn.inputs(a[sl], b[sl]))
        with torch.enable_grad():  # callers may hold no_grad (eval_mode)
            logits = fn.fn(x0, x1)  # [B, p]
        n_out = logits.shape[1]
        eye = torch.eye(n_out, dtype=logits.dtype)[:, None, :].expand(n_out, len(x0), n_out)  # one class per grad
        g0, g1 = torch.autograd.grad(logits, (x0, x1), eye, is_grads_batched=True)  # [p, B, d] each
        g = torch.cat([g0, g1], -1).to(torch.float64)  # [p, B, 2d]
        mask = part[sl]
        gi, go = g[:, mask].flatten(0, 1), g[:, ~mask].flatten(0, 1)
        inside += gi.T @ gi
        outside += go.T @ go
    return inside, outside


def circulant_fraction(M: Tensor) -> float:
    """||C(M')||^2 / ||M'||^2 of a square block ``M [n, n]``: M' without its main diagonal, C the
    average of each wrap-around diagonal (entries (i, i + s mod n), s = 0..n-1)."""
    n = M.shape[0]
    Mp = M.to(torch.float64) * (1 - torch.eye(n, dtype=torch.float64))
    i = torch.arange(n)
    s = (i[None, :] - i[:, None]) % n  # [n, n]: the diagonal of each entry
    means = torch.zeros(n, dtype=torch.float64).index_add_(0, s.flatten(), Mp.flatten()) / n
    C = means[s] * (1 - torch.eye(n, dtype=torch.float64))  # keep the removed diagonal removed
    denom = float((Mp**2).sum())
    return float((C**2).sum()) / denom if denom > 0 else float("nan")


def model_agop(
    model: Transformer | MLPModel, ds: Dataset, basis: Basis, train_rows: Tensor | None = None
) -> tuple[Tensor, AgopFractions, AgopFractions | None, str | None]:
    """AGOP over all analysed pairs, its fractions, the fractions over the training pairs among
    them (``train_rows``: dataset rows), and why fractions are None."""
    fn = input_logits(model)
    with eval_mode(model):
        tokens = ds.tokens[basis.rows]
        G_train = None
        if train_rows is None:
            G = agop(fn, tokens[:, 0], tokens[:, 1])
        else:
            G, G_train = agop_split(fn, tokens[:, 0], tokens[:, 1], torch.isin(basis.rows, train_rows))
    none = AgopFractions(None, None, None)
    if basis.token_reason is not None:
        return G, none, none, basis.token_reason
    assert basis.map is not None
    order_a, order_b = basis.token_order, _order_b(basis)
    fr = agop_fractions(G, order_a, order_b)
    return G, fr, (agop_fractions(G_train, order_a, order_b) if G_train is not None else None), None


def _order_b(basis: Basis) -> Tensor:
    assert basis.map is not None
    return _order(basis.map.phi_b, basis.n)


def reversed_order(order: Tensor) -> Tensor:
    """[n] the token at phi position -j (mod n) at j: the a-b block's column order."""
    n = len(order)
    return order[(-torch.arange(n)) % n]


def agop_fractions(G: Tensor, order_a: Tensor, order_b: Tensor) -> AgopFractions:
    """Circulant fractions of the a-a, b-b and a-b blocks of ``G [2p, 2p]``, tokens in phi order
    (``order_a``, ``order_b`` [n]: the token at phi position j)."""
    p = G.shape[0] // 2
    aa = G[:p, :p][order_a][:, order_a]
    bb = G[p:, p:][order_b][:, order_b]
    ab = G[:p, p:][order_a][:, reversed_order(order_b)]
    return AgopFractions(circulant_fraction(aa), circulant_fraction(bb), circulant_fraction(ab))
