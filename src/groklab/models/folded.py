"""The `=` logits of a 1-layer transformer without LayerNorm, folded into per-token tables.

With one layer and no LayerNorm everything after the attention pattern is linear up to the MLP's
activation, so it can be applied to tables of tokens instead of to examples. The `=` query is one
constant row, so its scaled scores against keys 0 and 1 are tables ``[vocab, head]`` and against
itself a constant ``[head]``; each example's pattern is a softmax over its three scores, weights
w0, w1, w2 with w0 + w1 + w2 = 1 per head. The residual at `=` is x2 plus the attention output
(x2 = W_E[=] + W_pos[2]); it is read by W_in (the MLP) and by W_U (the direct path), side by side
as R = [W_in | W_U] ``[d_model, d_mlp + p]``. With v_j = (W_E[t] + W_pos[j]) @ W_V[h] and
w2 = 1 - w0 - w1:

    h      = c + sum_h sum_{j=0,1} w_j[h] * T[h, j, token_j]            # [batch, d_mlp + p]
    T[h, j, t] = (v_j[t, h] - v_2[h]) @ W_O[h] @ R                      # [head, 2 * vocab, d_mlp + p]
    c      = (x2 + sum_h v_2[h] @ W_O[h]) @ R + [b_in | b_out @ W_U]    # [d_mlp + p]
    pre, direct = h[:, :d_mlp], h[:, d_mlp:]
    logits = direct + act(pre) @ W_L,   W_L = W_out @ W_U               # [batch, p]

With an attention rate alpha != 1 (``model.attn_rate``) the weights are alpha * w_j + 1 - alpha and
sum to 3 - 2 alpha, so v_2 enters c as (3 - 2 alpha) * v_2 (T is unchanged: it is relative to v_2).

Each example then costs a weighted sum of 2 * n_heads + 1 table rows (c is the last, weight 1)
instead of matmuls with [d_model, d_mlp] and [d_model, p]; the tables are rebuilt from the weights
on every call (about 0.2 GFLOP with their gradients, for the canonical model). The sum runs forward
as one ``embedding_bag`` over the rows of every table; backward, the same ``embedding_bag`` gives
the gradient of the weights w, and a second one over the rows of the gradient (a bag per table row,
:func:`_bags`) gives the tables' gradients (:class:`_TableGrad`). With ReLU and no hooks attached,
activation and readout are one step (:class:`_ReluReadout`), whose backward masks the gradient of
``pre`` in the buffer it writes it to, beside that of ``direct``.

Everything is computed for S members at once (stacked parameters, a leading member dim;
:func:`folded_logits_stacked`); one model is S = 1 (:func:`folded_logits`). The members' tables are
stacked into one ``[S * rows, d_mlp + p]`` table (member m's rows offset by m * rows), so one
``embedding_bag`` serves them all, and the readout is a batched matmul. Logits and gradients equal
the full forward up to float rounding (tests/models/test_folded.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from groklab.config import ModelConfig

if TYPE_CHECKING:
    from groklab.models.transformer import MLP, Transformer

__all__ = ["can_fold", "folded_logits", "folded_logits_stacked", "rate_pattern"]


def rate_pattern(softmax: Tensor, rate: float) -> Tensor:
    """The attention rate alpha of Zhong et al. 2023 (``model.attn_rate``): ``alpha * softmax +
    (1 - alpha)`` on every key the query sees, unnormalised (alpha = 1: plain softmax; alpha = 0:
    every visible key has weight 1). ``softmax`` holds visible keys only, or 0 on masked ones."""
    if rate == 1.0:
        return softmax
    return softmax * rate + (1.0 - rate)


def can_fold(model: Transformer) -> bool:
    """The fold needs a single layer and no LayerNorm (which is not linear)."""
    return model.cfg.n_layers == 1 and not model.cfg.layernorm


def folded_logits(model: Transformer, a: Tensor, b: Tensor) -> Tensor:
    """Logits at `=` for inputs ``a, b [batch]``: [batch, p]. Needs :func:`can_fold`.

    Fires the MLP's ``hook_pre`` and ``hook_post`` ([batch, d_mlp]) as the unfolded path does."""
    params = {name: prm[None] for name, prm in model.named_parameters()}
    return _logits(params, model.cfg, model.p, a[None], b[None], model.block_list[0].mlp).squeeze(0)


def folded_logits_stacked(params: Mapping[str, Tensor], cfg: ModelConfig, p: int, a: Tensor, b: Tensor) -> Tensor:
    """Logits at `=` of S models at once: [S, batch, p]. No hooks.

    ``params``: the Transformer's parameters by their ``named_parameters`` names, each with a
    leading member dim S (as ``torch.func.stack_module_state`` gives); ``a, b [S, batch]``: each
    member's own inputs. ``cfg`` must fold (one layer, no LayerNorm)."""
    if cfg.n_layers != 1 or cfg.layernorm:
        raise ValueError("the folded path needs n_layers = 1 and no LayerNorm")
    return _logits(params, cfg, p, a, b, None)


def _logits(P: Mapping[str, Tensor], cfg: ModelConfig, p: int, a: Tensor, b: Tensor, mlp: MLP | None) -> Tensor:
    """[S, batch, p] from stacked parameters and ``a, b [S, batch]``; ``mlp`` holds the hooks (S = 1)."""
    tables = _tables(P, cfg, p)
    n_member, n = a.shape
    n_scores, n_head = tables.scores.shape[1:]  # (key, token) groups and the `=` key
    group = torch.stack([a, b + n_scores // 2], -1).long()  # [S, batch, key]: the (key, token) of each key
    member = torch.arange(n_member, device=a.device)[:, None, None]
    s = tables.scores.flatten(0, 1).index_select(0, (group + member * n_scores).flatten())
    s_eq = tables.scores[:, -1, None, None].expand(-1, n, 1, -1)  # [S, batch, 1, head]: the `=` key
    pattern = torch.cat([s.view(n_member, n, 2, n_head), s_eq], 2).softmax(2)  # [S, batch, key (0, 1, =), head]
    # weights alpha * w_j + 1 - alpha (attn_rate); their sum 3 - 2 alpha is in c
    weight = rate_pattern(pattern, cfg.attn_rate)[:, :, :2].flatten(0, 1)  # [S * batch, key, head]
    h = _row_sums(tables.table, group, weight)  # [S * batch, d_mlp + p]
    W_L, d_mlp = tables.W_L, tables.W_L.shape[1]
    hooked = mlp is not None and (mlp.hook_pre.hooked or mlp.hook_post.hooked)
    if cfg.act == "relu" and not hooked:
        return _ReluReadout.apply(h, tables.table, W_L, group, weight.detach())
    h = _TableGrad.apply(h, tables.table, group, weight.detach())[:, : d_mlp + p]
    act = (F.relu if cfg.act == "relu" else F.gelu) if mlp is None else mlp.act
    pre = h[:, :d_mlp] if mlp is None else mlp.hook_pre(h[:, :d_mlp])  # [S * batch, d_mlp]
    post = act(pre) if mlp is None else mlp.hook_post(act(pre))
    return torch.baddbmm(h[:, d_mlp:].view(n_member, n, p), post.view(n_member, n, d_mlp), W_L)


class _Tables(NamedTuple):
    table: Tensor  # [S * (head * groups) + S, d_mlp + p]: T of member m at rows m * head * groups + ..., then each c
    scores: Tensor  # [S, groups + 1, head]: the `=` query's scaled scores; the last row is the `=` key
    W_L: Tensor  # [S, d_mlp, p]


def _tables(P: Mapping[str, Tensor], cfg: ModelConfig, p: int) -> _Tables:
    """The weights folded into tables (module docstring); every parameter has a leading member dim."""
    W_E, W_pos, W_U = P["embed.W_E"], P["pos_embed.W_pos"], P["unembed.W_U"]
    W_Q, W_K, W_V, W_O = (P[f"blocks.0.attn.{n}"] for n in ("W_Q", "W_K", "W_V", "W_O"))
    W_in, b_in, W_out, b_out = (P[f"blocks.0.mlp.{n}"] for n in ("W_in", "b_in", "W_out", "b_out"))
    n_member, n_head, d_model, d_head = W_V.shape
    x2 = W_E[:, p] + W_pos[:, 2]  # [S, d_model]: the `=` stream
    streams = torch.cat([W_E + W_pos[:, :1], W_E + W_pos[:, 1:2], x2[:, None]], 1)  # [S, 2 * vocab + 1, d_model]
    query = torch.einsum("sm,shmd->shd", x2, W_Q)
    reader = torch.einsum("shmd,shd->smh", W_K, query) / math.sqrt(d_head)  # [S, d_model, head]
    # scores and values of every (key, token) in one product
    W_V = W_V.transpose(1, 2).flatten(2)  # [S, d_model, head * d_head]
    sv = torch.bmm(streams, torch.cat([reader, W_V], 2))  # [S, 2 * vocab + 1, head + head * d_head]
    scores, v = sv.split([n_head, n_head * d_head], 2)
    dv = (v[:, :-1] - v[:, -1:]).view(n_member, -1, n_head, d_head).transpose(1, 2)  # relative to the `=` value
    # what reads the residual at `=`, [S, d_model, C]; C = d_mlp + p padded with zero columns to a
    # multiple of 8 (aligned rows: embedding_bag's weight gradient was 6x slower at C = 625 than 632)
    pad = W_U.new_zeros(n_member, d_model, -(W_in.shape[2] + p) % 8)
    R = torch.cat([W_in, W_U, pad], 2)
    OR = torch.bmm(W_O.flatten(1, 2), R)  # [S, head * d_head, d_mlp + p]
    T = dv @ OR.view(n_member, n_head, d_head, -1)  # [S, head, 2 * vocab, d_mlp + p]
    total = 3.0 - 2.0 * cfg.attn_rate  # sum of the three keys' weights (1 unless attn_rate != 1)
    bias = torch.cat([b_in, torch.bmm(b_out[:, None], W_U)[:, 0], pad[:, 0]], 1)
    c = torch.bmm(x2[:, None], R)[:, 0] + total * torch.bmm(v[:, -1:], OR)[:, 0] + bias  # [S, C]
    table = torch.cat([T.flatten(0, 2), c])
    return _Tables(table, scores, torch.bmm(W_out, W_U))


def _row_sums(table: Tensor, group: Tensor, weight: Tensor) -> Tensor:
    """``out[e] = c + sum_{k, h} weight[e, k, h] * T[h, group[e, k]]`` for every member: [S * batch, C].

    table [S * head * groups + S, C] (:class:`_Tables`), group [S, batch, key] (each member's own
    groups), weight [S * batch, key, head]. Carries the gradient of ``weight`` only: that of the
    table comes from :class:`_TableGrad` or :class:`_ReluReadout`."""
    n_member, n, _ = group.shape
    n_head = weight.shape[2]
    per_member = (table.shape[0] - n_member) // (n_member * n_head)  # groups per member
    member = torch.arange(n_member, device=group.device)[:, None, None, None]
    head = torch.arange(n_head, device=group.device)
    rows = ((member * n_head + head) * per_member + group[..., None]).view(n_member * n, -1)  # T[m, h, g]
    c_rows = (n_member * n_head * per_member + member.flatten()).repeat_interleave(n)[:, None]  # c of member m
    w = torch.cat([weight.flatten(1), weight.new_ones(n_member * n, 1)], 1)  # c's weight is 1
    return F.embedding_bag(torch.cat([rows, c_rows], 1), table.detach(), mode="sum", per_sample_weights=w)


def _table_grad(grad: Tensor, group: Tensor, weight: Tensor, n_rows: int) -> Tensor:
    """The gradient of the table of :func:`_row_sums` given that of its output, ``grad [S * batch, C]``.

    ``grad_T[m, h, g] = sum over (e, k) with group[e, k] = g of weight[e, k, h] * grad[e]`` and
    ``grad_c[m] = sum of grad[e]`` over member m's examples: an ``embedding_bag`` over the rows of
    ``grad`` with a bag per row of the table (:func:`_bags`), in the table's order."""
    n_member, n_head = group.shape[0], weight.shape[2]
    members, w, offsets = _bags(group, weight, (n_rows - n_member) // (n_member * n_head))
    return F.embedding_bag(members, grad, offsets, mode="sum", per_sample_weights=w)


class _TableGrad(torch.autograd.Function):
    """Identity on the row sums ``h`` whose backward also gives the gradient of their table.
    Inputs: h, table, group, weight (as in :func:`_row_sums`)."""

    @staticmethod
    def forward(ctx: Any, h: Tensor, table: Tensor, group: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(group, weight)
        ctx.n_rows = table.shape[0]
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        group, weight = ctx.saved_tensors
        grad_table = _table_grad(grad, group, weight, ctx.n_rows) if ctx.needs_input_grad[1] else None
        return grad, grad_table, None, None


class _ReluReadout(torch.autograd.Function):
    """``logits = direct + relu(pre) @ W_L`` per member from the row sums ``h = [pre | direct]``
    ``[S * batch, d_mlp + p]``: [S, batch, p]. Its backward writes the gradients of ``pre`` (masked by
    the ReLU in place) and ``direct`` into one buffer, and gives the table's (as :class:`_TableGrad`).
    Inputs: h, table, W_L [S, d_mlp, p], group, weight."""

    @staticmethod
    def forward(ctx: Any, h: Tensor, table: Tensor, W_L: Tensor, group: Tensor, weight: Tensor) -> Tensor:
        n_member, d_mlp, p = W_L.shape
        post = h[:, :d_mlp].relu()  # [S * batch, d_mlp]
        ctx.save_for_backward(post, W_L, group, weight)
        ctx.n_rows, ctx.n_cols = table.shape
        direct = h[:, d_mlp : d_mlp + p].view(n_member, -1, p)
        return torch.baddbmm(direct, post.view(n_member, -1, d_mlp), W_L)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # grad [S, batch, p]
        post, W_L, group, weight = ctx.saved_tensors
        n_member, d_mlp, p = W_L.shape
        grad_h = grad.new_empty(post.shape[0], ctx.n_cols)
        grad_pre = grad_h[:, :d_mlp]
        torch.bmm(grad, W_L.transpose(1, 2), out=grad_pre.view(n_member, -1, d_mlp))
        # ReLU's gradient in place, torch's own kernel (0 where the output is 0; masked_fill_ was 20x slower)
        torch.ops.aten.threshold_backward.grad_input(grad_pre, post, 0, grad_input=grad_pre)
        grad_h[:, d_mlp : d_mlp + p].view_as(grad).copy_(grad)
        grad_h[:, d_mlp + p :].zero_()  # the padding
        grad_W_L = torch.bmm(post.view(n_member, -1, d_mlp).transpose(1, 2), grad)
        grad_table = _table_grad(grad_h, group, weight, ctx.n_rows) if ctx.needs_input_grad[1] else None
        return grad_h, grad_table, grad_W_L, None, None


def _bags(group: Tensor, weight: Tensor, per_member: int) -> tuple[Tensor, Tensor, Tensor]:
    """A bag per table row, in the table's order: members [n], their weights [n], the bags' offsets.

    group [S, batch, key] (< per_member), weight [S * batch, key, head]. The members of the bag of
    T[m, h, g] are member m's examples e with group[m, e, k] = g (for some key k), weighted by
    weight[e, k, h]; the bag of c[m] holds all of member m's examples, weight 1. Examples are
    numbered m * batch + e. A member's bags for one head list its entries (e, k) sorted by group,
    so every head repeats the same members with its own weights."""
    n_member, n, n_key = group.shape
    n_head, dev = weight.shape[2], group.device
    n_entry = n * n_key  # per member
    member = torch.arange(n_member, device=dev)
    entry_group = (group + member[:, None, None] * per_member).flatten()  # [S * entry]: entry (m, e, k)
    order = torch.argsort(entry_group, stable=True)  # entries by group; a member's stay in its block
    counts = entry_group.bincount(minlength=n_member * per_member)
    starts = (counts.cumsum(0) - counts).view(n_member, 1, per_member)  # where a group begins in ``order``
    members = (order // n_key).view(n_member, 1, n_entry).expand(-1, n_head, -1)  # [S, head, entry]
    w = weight.flatten(0, 1)[order].view(n_member, n_entry, n_head).transpose(1, 2)  # [S, head, entry]
    head = torch.arange(n_head, device=dev)[:, None]
    # bag (m, h, g) begins at (m * head + h) * entry + (starts[m, g] - m * entry)
    offsets = (member[:, None, None] * (n_head - 1) + head) * n_entry + starts
    n_bagged = n_member * n_head * n_entry
    return (
        torch.cat([members.flatten(), torch.arange(n_member * n, device=dev)]),  # then c's bags
        torch.cat([w.flatten(), weight.new_ones(n_member * n)]),
        torch.cat([offsets.flatten(), n_bagged + member * n]),
    )
