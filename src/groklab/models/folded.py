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

(T_U and c_U likewise with W_U, and b_out @ W_U for the bias.) Each example then costs a weighted
sum of 2 * n_heads + 1 table rows instead of matmuls with [d_model, d_mlp] and [d_model, p]; the
tables are rebuilt from the weights on every call (about 0.1 GFLOP with their gradients, for the
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

__all__ = ["can_fold", "folded_logits"]


def can_fold(model: Transformer) -> bool:
    """The fold needs a single layer and no LayerNorm (which is not linear)."""
    return model.cfg.n_layers == 1 and not model.cfg.layernorm


def folded_logits(model: Transformer, a: Tensor, b: Tensor) -> Tensor:
    """Logits at `=` for inputs ``a, b [batch]``: [batch, p]. Needs :func:`can_fold`.

    Fires the MLP's ``hook_pre`` and ``hook_post`` ([batch, d_mlp]) as the unfolded path does."""
    mlp, vocab = model.block_list[0].mlp, model.embed.W_E.shape[0]
    tables = _tables(model)
    group = torch.stack([a, b + vocab], 1).long()  # [batch, key]: each key's (key, token) row of tables.scores
    n_head = tables.scores.shape[1]
    s = tables.scores.index_select(0, group.flatten()).view(-1, 2, n_head)  # [batch, key, head]
    s_eq = tables.scores[-1].expand(len(a), 1, n_head)  # the `=` key's scores
    pattern = torch.cat([s, s_eq], 1).softmax(1)  # [batch, key (0, 1, =), head]
    pre, direct = _row_sums([tables.mlp_in, tables.direct], group, pattern[:, :2])
    post = mlp.hook_post(mlp.act(mlp.hook_pre(pre)))  # [batch, d_mlp]
    return torch.addmm(direct, post, mlp.W_out @ model.unembed.W_U)


class _Tables(NamedTuple):
    mlp_in: Tensor  # [2 * vocab * head + 1, d_mlp]: T_in, rows (key, token, head), then c_in
    direct: Tensor  # [2 * vocab * head + 1, p]: T_U likewise, then c_U
    scores: Tensor  # [2 * vocab + 1, head]: the `=` query's scaled scores, rows (key, token), then `=`


def _tables(model: Transformer) -> _Tables:
    """The weights folded into tables (module docstring)."""
    block, p = model.block_list[0], model.p
    attn, mlp = block.attn, block.mlp
    W_E, W_pos, W_U = model.embed.W_E, model.pos_embed.W_pos, model.unembed.W_U
    x2 = W_E[p] + W_pos[2]  # [d_model]: the `=` stream
    streams = torch.cat([W_E + W_pos[0], W_E + W_pos[1], x2[None]])  # [2 * vocab + 1, d_model]
    reader = torch.einsum("hmd,hd->mh", attn.W_K, x2 @ attn.W_Q) * attn.scale  # [d_model, head]
    v = streams @ attn.W_V  # [head, 2 * vocab + 1, d_head]
    dv = v[:, :-1] - v[:, -1:]  # [head, 2 * vocab, d_head]: relative to the `=` key's value
    x2_mid = x2 + torch.einsum("hd,hdm->m", v[:, -1], attn.W_O)  # the residual if `=` attended to itself
    tables = []
    for W, bias in ((mlp.W_in, mlp.b_in), (W_U, mlp.b_out @ W_U)):  # W [d_model, C]
        T = torch.bmm(dv, attn.W_O @ W).transpose(0, 1)  # [2 * vocab, head, C]
        tables.append(torch.cat([T.flatten(0, 1), (x2_mid @ W + bias)[None]]))
    return _Tables(tables[0], tables[1], streams @ reader)


def _row_sums(tables: list[Tensor], group: Tensor, weight: Tensor) -> list[Tensor]:
    """``out[e] = c + sum_{k, h} weight[e, k, h] * table[(group[e, k], h)]`` for each table: [batch, C].

    group [batch, key] indexes blocks of ``head`` rows; weight [batch, key, head]; each table is
    ``[n_groups * head + 1, C]``, its last row c. An ``embedding_bag`` sums the rows without
    materialising them and gives the gradient of ``weight``; :class:`_TableGrad` those of the tables."""
    n, n_key, n_head = weight.shape
    head = torch.arange(n_head, device=group.device)
    rows = (group[:, :, None] * n_head + head).flatten(1)  # [batch, key * head]
    c_row = torch.full((n, 1), tables[0].shape[0] - 1, dtype=rows.dtype, device=rows.device)
    rows = torch.cat([rows, c_row], 1)
    w = torch.cat([weight.flatten(1), weight.new_ones(n, 1)], 1)  # c's weight is 1
    outs = [F.embedding_bag(rows, t.detach(), mode="sum", per_sample_weights=w) for t in tables]
    return list(_TableGrad.apply(group, weight.detach(), *tables, *outs))


class _TableGrad(torch.autograd.Function):
    """Identity on the sums whose backward also gives the gradients of the tables they came from.

    ``grad_table[(g, h)] = sum over (e, k) with group[e, k] = g of weight[e, k, h] * grad[e]`` and
    ``grad_c = sum_e grad[e]``: an ``embedding_bag`` over the rows of ``grad``, a bag per table row
    (:func:`_bags`)."""

    @staticmethod
    def forward(ctx: Any, group: Tensor, weight: Tensor, *tables_and_outs: Tensor) -> tuple[Tensor, ...]:
        ctx.save_for_backward(group, weight)
        ctx.n_groups = (tables_and_outs[0].shape[0] - 1) // weight.shape[2]
        return tables_and_outs[len(tables_and_outs) // 2 :]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:  # each grad [batch, C]
        group, weight = ctx.saved_tensors  # [batch, key], [batch, key, head]
        members, w, offsets = _bags(group, weight, ctx.n_groups)
        n = group.shape[0]  # then c's bag: every example, weight 1
        members = torch.cat([members, torch.arange(n, device=group.device)])
        w = torch.cat([w, weight.new_ones(n)])
        offsets = torch.cat([offsets, offsets.new_full((1,), members.numel() - n)])
        table_grads = [F.embedding_bag(members, g, offsets, mode="sum", per_sample_weights=w) for g in grads]
        return (None, None, *table_grads, *grads)


def _bags(group: Tensor, weight: Tensor, n_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """A bag per table row (g, h), in row order: members [n], their weights [n], the bags' offsets.

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
