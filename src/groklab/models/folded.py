"""The `=` logits of a 1-layer transformer without LayerNorm, folded into per-token tables.

With one layer and no LayerNorm everything after the attention pattern is linear up to the MLP's
activation, so it can be applied to tables of tokens instead of to examples. The `=` query is one
constant row, so its scaled scores against keys 0 and 1 are tables ``[vocab, head]`` and against
itself a constant ``[head]``; each example's pattern is a softmax over its three scores, weights
w0, w1, w2 with w0 + w1 + w2 = 1 per head. The residual at `=` is x2 plus the attention output
(x2 = W_E[=] + W_pos[2]); it is read by W_in (the MLP) and by W_U (the direct path). With
v_j = (W_E[t] + W_pos[j]) @ W_V[h] and w2 = 1 - w0 - w1:

    pre    = c_in + sum_h sum_{j=0,1} w_j[h] * T_in[j, token_j, h]       # [batch, d_mlp]
    direct = c_U  + sum_h sum_{j=0,1} w_j[h] * T_U[j, token_j, h]        # [batch, p]
    T_in[j, t, h] = (v_j[t, h] - v_2[h]) @ W_O[h] @ W_in                 # [2, vocab, head, d_mlp]
    c_in = (x2 + sum_h v_2[h] @ W_O[h]) @ W_in + b_in                    # [d_mlp]
    logits = direct + act(pre) @ (W_out @ W_U)                           # [batch, p]

(T_U and c_U likewise with W_U, and b_out @ W_U for the bias.) With an attention rate alpha != 1
(``model.attn_rate``) the weights are alpha * w_j + 1 - alpha and sum to S = 3 - 2 alpha, so v_2
enters the constants as S * v_2 (the rest is unchanged: it is relative to v_2).

Each example then costs a weighted sum of 2 * n_heads + 1 table rows instead of matmuls with [d_model, d_mlp] and [d_model, p]; the
tables are rebuilt from the weights on every call (about 0.2 GFLOP with their gradients, for the
canonical model). The sums run forward as one ``embedding_bag`` per table and backward as another,
over the gradient's rows (:func:`_row_sums`). Logits and gradients equal the full forward up to
float rounding (tests/models/test_folded.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

if TYPE_CHECKING:
    from groklab.models.transformer import Transformer


def rate_pattern(softmax: Tensor, rate: float) -> Tensor:
    """The attention rate alpha of Zhong et al. 2023 (``model.attn_rate``): ``alpha * softmax +
    (1 - alpha)`` on every key the query sees, unnormalised (alpha = 1: plain softmax; alpha = 0:
    every visible key has weight 1). ``softmax`` holds visible keys only, or 0 on masked ones."""
    if rate == 1.0:
        return softmax
    return softmax * rate + (1.0 - rate)


__all__ = ["can_fold", "folded_logits", "rate_pattern"]


def can_fold(model: Transformer) -> bool:
    """The fold needs a single layer and no LayerNorm (which is not linear)."""
    return model.cfg.n_layers == 1 and not model.cfg.layernorm


def folded_logits(model: Transformer, a: Tensor, b: Tensor) -> Tensor:
    """Logits at `=` for inputs ``a, b [batch]``: [batch, p]. Needs :func:`can_fold`.

    Fires the MLP's ``hook_pre`` and ``hook_post`` ([batch, d_mlp]) as the unfolded path does."""
    mlp, vocab = model.block_list[0].mlp, model.embed.W_E.shape[0]
    tables = _tables(model)
    group = torch.stack([a, b + vocab], 1).long()  # [batch, key]: the (key, token) index of each key
    n_head = tables.scores.shape[1]
    s = tables.scores.index_select(0, group.flatten()).view(-1, 2, n_head)  # [batch, key, head]
    s_eq = tables.scores[-1].expand(len(a), 1, n_head)  # the `=` key's scores
    pattern = torch.cat([s, s_eq], 1).softmax(1)  # [batch, key (0, 1, =), head]
    # weights alpha * w_j + 1 - alpha (attn_rate); their sum 3 - 2 alpha is in the tables' constants
    pattern = rate_pattern(pattern, model.cfg.attn_rate)
    pre, direct = _row_sums([tables.mlp_in, tables.direct], group, pattern[:, :2])
    post = mlp.hook_post(mlp.act(mlp.hook_pre(pre)))  # [batch, d_mlp]
    return torch.addmm(direct, post, mlp.W_out @ model.unembed.W_U)


class _Tables(NamedTuple):
    mlp_in: tuple[Tensor, Tensor]  # T_in [head, (key, token), d_mlp] and c_in [d_mlp]
    direct: tuple[Tensor, Tensor]  # T_U [head, (key, token), p] and c_U [p]
    scores: Tensor  # [(key, token) + 1, head]: the `=` query's scaled scores; the last row is the `=` key


def _tables(model: Transformer) -> _Tables:
    """The weights folded into tables (module docstring)."""
    block, p = model.block_list[0], model.p
    attn, mlp = block.attn, block.mlp
    W_E, W_pos, W_U = model.embed.W_E, model.pos_embed.W_pos, model.unembed.W_U
    n_head, _, d_head = attn.W_V.shape
    x2 = W_E[p] + W_pos[2]  # [d_model]: the `=` stream
    streams = torch.cat([W_E + W_pos[0], W_E + W_pos[1], x2[None]])  # [2 * vocab + 1, d_model]
    reader = torch.einsum("hmd,hd->mh", attn.W_K, x2 @ attn.W_Q) * attn.scale  # [d_model, head]
    v = (streams @ attn.W_V.transpose(0, 1).flatten(1)).view(-1, n_head, d_head)  # [2 * vocab + 1, head, d_head]
    dv = (v[:-1] - v[-1]).transpose(0, 1)  # [head, 2 * vocab, d_head]: relative to the `=` key's value
    W_O = attn.W_O.flatten(0, 1)  # [head * d_head, d_model]
    R = torch.cat([mlp.W_in, W_U], 1)  # [d_model, d_mlp + p]: what reads the residual at `=`
    T = torch.bmm(dv, (W_O @ R).view(n_head, d_head, -1))  # [head, 2 * vocab, d_mlp + p]
    total = 3.0 - 2.0 * model.cfg.attn_rate  # sum of the three keys' weights (1 unless attn_rate != 1)
    x2_mid = x2 + total * (v[-1].flatten() @ W_O)  # the residual at `=` if all weight were on itself
    c = x2_mid @ R + torch.cat([mlp.b_in, mlp.b_out @ W_U])  # [d_mlp + p]
    (T_in, T_U), (c_in, c_U) = T.split([mlp.W_in.shape[1], p], -1), c.split([mlp.W_in.shape[1], p])
    return _Tables((T_in, c_in), (T_U, c_U), streams @ reader)


def _row_sums(tables: list[tuple[Tensor, Tensor]], group: Tensor, weight: Tensor) -> list[Tensor]:
    """``out[e] = c + sum_{k, h} weight[e, k, h] * T[h, group[e, k]]`` for each table (T, c): [batch, C].

    group [batch, key], weight [batch, key, head], T [head, groups, C], c [C]. An ``embedding_bag``
    over the rows of ``[T; c]`` sums them without materialising them and gives the gradient of
    ``weight``; :class:`_TableGrad` gives those of T and c."""
    n, n_key, n_head = weight.shape
    n_groups = tables[0][0].shape[1]
    head = torch.arange(n_head, device=group.device) * n_groups
    rows = (group[:, :, None] + head).flatten(1)  # [batch, key * head]: rows (head, group) of T
    rows = torch.cat([rows, rows.new_full((n, 1), n_head * n_groups)], 1)  # then c's row
    w = torch.cat([weight.flatten(1), weight.new_ones(n, 1)], 1)  # c's weight is 1
    with torch.no_grad():
        flat = [torch.cat([T.flatten(0, 1), c[None]]) for T, c in tables]  # [head * groups + 1, C]
    outs = [F.embedding_bag(rows, t, mode="sum", per_sample_weights=w) for t in flat]
    return list(_TableGrad.apply(group, weight.detach(), *(x for t in tables for x in t), *outs))


class _TableGrad(torch.autograd.Function):
    """Identity on the sums whose backward also gives the gradients of the tables they came from.

    ``grad_T[h, g] = sum over (e, k) with group[e, k] = g of weight[e, k, h] * grad[e]`` and
    ``grad_c = sum_e grad[e]``: an ``embedding_bag`` over the rows of ``grad``, a bag per row of T
    (:func:`_bags`) and one for c. Inputs: group, weight, then T and c of each table, then the sums."""

    @staticmethod
    def forward(ctx: Any, group: Tensor, weight: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        ctx.save_for_backward(group, weight)
        ctx.n_groups = args[0].shape[1]
        return args[2 * len(args) // 3 :]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:  # each grad [batch, C]
        group, weight = ctx.saved_tensors  # [batch, key], [batch, key, head]
        members, w, offsets = _bags(group, weight, ctx.n_groups)
        n = group.shape[0]  # then c's bag: every example, weight 1
        members = torch.cat([members, torch.arange(n, device=group.device)])
        w = torch.cat([w, weight.new_ones(n)])
        offsets = torch.cat([offsets, offsets.new_full((1,), members.numel() - n)])
        table_grads = []
        for grad in grads:
            sums = F.embedding_bag(members, grad, offsets, mode="sum", per_sample_weights=w)  # bags (group, head), c
            table_grads += [sums[:-1].view(ctx.n_groups, weight.shape[2], -1).transpose(0, 1), sums[-1]]
        return (None, None, *table_grads, *grads)


def _bags(group: Tensor, weight: Tensor, n_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """A bag per (group, head), group-major: members [n], their weights [n], the bags' offsets.

    The members of bag (g, h) are the examples e with group[e, k] = g (for some key k), weighted by
    weight[e, k, h]. A group's bags for the heads follow one another, so its examples' gradient rows
    are read again while still in cache."""
    n, n_key, n_head = weight.shape
    dev = group.device
    entry_group = group.flatten()  # [entry]: entry e * key + k
    order = torch.argsort(entry_group, stable=True)  # entries by group
    counts = entry_group.bincount(minlength=n_groups)  # [group]
    starts = counts.cumsum(0) - counts  # where a group's entries begin in ``order``
    g = entry_group[order]
    head = torch.arange(n_head, device=dev)
    # bag (g, h) begins at starts[g] * head + h * counts[g]; sorted entry j has rank j - starts[g] in it
    rank = torch.arange(order.numel(), device=dev) - starts[g]
    slot = (starts[g] * n_head + rank)[:, None] + counts[g][:, None] * head  # [entry, head]
    members = torch.empty(slot.numel(), dtype=group.dtype, device=dev)
    members[slot] = (order // n_key)[:, None]
    w = torch.empty(slot.numel(), dtype=weight.dtype, device=dev)
    w[slot] = weight.flatten(0, 1)[order]
    return members, w, (starts[:, None] * n_head + head * counts[:, None]).flatten()
