"""The `=` logits of a 1-layer transformer without LayerNorm, folded into per-token tables.

With one layer and no LayerNorm everything after the attention pattern is linear up to the MLP's
activation, so it can be applied to tables of tokens instead of to examples. The `=` query is one
constant row, so its scaled scores against keys 0 and 1 are tables ``[vocab, head]`` and against
itself a constant ``[head]``; each example's pattern is a softmax over its three scores, weights
w0, w1, w2 with w0 + w1 + w2 = 1 per head. The residual at `=` is x2 plus the attention output
(x2 = W_E[=] + W_pos[2]); it is read by W_in (the MLP) and by W_U (the direct path), side by side
as R = [W_in | W_U | 0] ``[d_model, C]`` (C = d_mlp + p, padded with zero columns to a multiple of
8: aligned rows made embedding_bag's weight gradient 6x faster at C = 632 than at 625). With
v_j[t, h] = (W_E[t] + W_pos[j]) @ W_V[h] and w2 = 1 - w0 - w1:

    h      = c + sum_h sum_{j=0,1} w_j[h] * T[h, j, token_j]            # [batch, C]
    T[h, j, t] = (v_j[t, h] - v_2[h]) @ W_O[h] @ R                      # [head, 2, vocab, C]
               = (W_E[t] - W_E[=]) @ W_V[h] @ OR[h] + (W_pos[j] - W_pos[2]) @ W_V[h] @ OR[h]
    OR[h]  = W_O[h] @ R                                                 # [head, d_head, C]
    c      = (x2 + sum_h v_2[h] @ W_O[h]) @ R + [b_in | b_out @ W_U | 0]
    pre, direct = h[:, :d_mlp], h[:, d_mlp : d_mlp + p]
    logits = direct + act(pre) @ W_L,   W_L = W_out @ W_U               # [batch, p]

(the token part of T is one matmul over the vocabulary, shared by both keys; scores split alike).
With an attention rate alpha != 1 (``model.attn_rate``) the weights are alpha * w_j + 1 - alpha and
sum to 3 - 2 alpha, so v_2 enters c as (3 - 2 alpha) * v_2 (T is unchanged: it is relative to v_2).

Each example then costs a weighted sum of 2 * n_heads table rows plus c instead of matmuls with
[d_model, d_mlp] and [d_model, p]; the tables are rebuilt from the weights on every call (about
0.17 GFLOP with their gradients, for the canonical model). The sum is one ``embedding_bag`` over
the table (:func:`_sums`); backward, torch's per-sample-weight kernel gives the gradient of the
weights w, and an ``embedding_bag`` over the rows of the gradient with a bag per table row
(:func:`_bags`) gives the table's (:func:`_sums_backward`). With ReLU and no hook attached to
``hook_pre`` / ``hook_post``, sums, activation and readout are one autograd step
(:class:`_ReluReadout`): ReLU runs in place on the sums, and the backward writes the gradients of
``pre`` (masked in place by torch's ReLU kernel) and ``direct`` into one buffer. Otherwise the sums
are a step of their own (:class:`_RowSums`) and the hooks see ``pre`` and ``post`` [batch, d_mlp].

Everything is computed for S members at once (stacked parameters with a leading member dim,
:func:`folded_logits_stacked`); one model is S = 1 (:func:`folded_logits`). The members' tables are
stacked into one ``[S * head * 2 * vocab, C]`` table (member m's rows offset by m * head * 2 * vocab),
so one ``embedding_bag`` serves them all; on CPU the tables are built and the readout matmuls run
one member at a time (the same calls as for one model, so that a member of an ensemble equals its
separate run bit for bit; for the readout it is also faster there than bmm), batched elsewhere.
Logits and gradients equal the full forward up to float rounding (tests/models/test_folded.py).
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
    tables = _member_tables(P, cfg, p)
    n_member, n = a.shape
    n_scores, n_head = tables.scores.shape[1:]  # (key, token) groups and the `=` key
    group = torch.stack([a, b + n_scores // 2], -1).long()  # [S, batch, key]: the (key, token) of each key
    member = torch.arange(n_member, device=a.device)[:, None, None]
    s = tables.scores.flatten(0, 1).index_select(0, (group + member * n_scores).flatten())
    s_eq = tables.scores[:, -1, None, None].expand(-1, n, 1, -1)  # [S, batch, 1, head]: the `=` key
    pattern = torch.cat([s.view(n_member, n, 2, n_head), s_eq], 2).softmax(2)  # [S, batch, key (0, 1, =), head]
    # weights alpha * w_j + 1 - alpha (attn_rate); their sum 3 - 2 alpha is in c
    weight = rate_pattern(pattern, cfg.attn_rate)[:, :, :2].flatten(0, 1)  # [S * batch, key, head]
    W_L, d_mlp = tables.W_L, tables.W_L.shape[1]
    hooked = mlp is not None and (mlp.hook_pre.hooked or mlp.hook_post.hooked)
    if cfg.act == "relu" and not hooked:
        return _ReluReadout.apply(tables.table, tables.c, weight, group, W_L)
    h = _RowSums.apply(tables.table, tables.c, weight, group)  # [S * batch, C]
    act = (F.relu if cfg.act == "relu" else F.gelu) if mlp is None else mlp.act
    pre = h[:, :d_mlp] if mlp is None else mlp.hook_pre(h[:, :d_mlp])  # [S * batch, d_mlp]
    post = act(pre) if mlp is None else mlp.hook_post(act(pre))
    direct, post = h[:, d_mlp : d_mlp + p].view(n_member, n, p), post.view(n_member, n, d_mlp)
    if h.device.type != "cpu":
        return torch.baddbmm(direct, post, W_L)
    return torch.stack([torch.addmm(direct[m], post[m], W_L[m]) for m in range(n_member)])  # as _member_mm


class _Tables(NamedTuple):
    table: Tensor  # [S * head * groups, C]: T of member m, head h at rows (m * head + h) * groups + ...
    c: Tensor  # [S, C]
    scores: Tensor  # [S, groups + 1, head]: the `=` query's scaled scores; the last row is the `=` key
    W_L: Tensor  # [S, d_mlp, p]


def _member_tables(P: Mapping[str, Tensor], cfg: ModelConfig, p: int) -> _Tables:
    """The tables of every member. On CPU they are built one member at a time (S = 1 each, then
    stacked): batched products and reductions round differently with the number of members (einsum
    and a one-row bmm did), and a member of an ensemble must equal its separate run bit for bit.
    Batched elsewhere, where no such equality is promised."""
    n_member = P["embed.W_E"].shape[0]
    if P["embed.W_E"].device.type != "cpu" or n_member == 1:
        return _tables(P, cfg, p)
    # unbind, not slicing: its backward is one stack, where S slices would each write an [S, ...] zero tensor
    views = {n: t.unbind(0) for n, t in P.items()}
    each = [_tables({n: v[m][None] for n, v in views.items()}, cfg, p) for m in range(n_member)]
    return _Tables(*(torch.cat(parts) for parts in zip(*each, strict=True)))


def _tables(P: Mapping[str, Tensor], cfg: ModelConfig, p: int) -> _Tables:
    """The weights folded into tables (module docstring); every parameter has a leading member dim."""
    W_E, W_pos, W_U = P["embed.W_E"], P["pos_embed.W_pos"], P["unembed.W_U"]
    W_Q, W_K, W_V, W_O = (P[f"blocks.0.attn.{n}"] for n in ("W_Q", "W_K", "W_V", "W_O"))
    W_in, b_in, W_out, b_out = (P[f"blocks.0.mlp.{n}"] for n in ("W_in", "b_in", "W_out", "b_out"))
    n_member, n_head, d_model, d_head = W_V.shape
    x2 = W_E[:, p] + W_pos[:, 2]  # [S, d_model]: the `=` stream
    query = torch.einsum("sm,shmd->shd", x2, W_Q)
    reader = torch.einsum("shmd,shd->smh", W_K, query) / math.sqrt(d_head)  # [S, d_model, head]
    # scores and values of stream W_E[t] + W_pos[j]: a token part and a position part, each [.., head + head * d_head]
    reads = torch.cat([reader, W_V.transpose(1, 2).flatten(2)], 2)
    tok, pos = torch.bmm(W_E, reads), torch.bmm(W_pos, reads)  # [S, vocab, ...], [S, 3, ...]
    scores = torch.cat(
        [
            (tok[:, None, :, :n_head] + pos[:, :2, None, :n_head]).flatten(1, 2),
            (tok[:, p] + pos[:, 2])[:, None, :n_head],
        ],
        1,
    )
    # values relative to the `=` key's: v_j[t] - v_2 = (tok[t] - tok[=]) + (pos[j] - pos[2])
    dv_tok = (tok[:, :, n_head:] - tok[:, p, None, n_head:]).unflatten(2, (n_head, d_head)).transpose(1, 2)
    dv_pos = (pos[:, :2, n_head:] - pos[:, 2:, n_head:]).unflatten(2, (n_head, d_head)).transpose(1, 2)
    # what reads the residual at `=`, [S, d_model, C]: C = d_mlp + p padded to a multiple of 8 (module docstring)
    pad = W_U.new_zeros(n_member, d_model, -(W_in.shape[2] + p) % 8)
    R = torch.cat([W_in, W_U, pad], 2)
    OR = torch.bmm(W_O.flatten(1, 2), R)  # [S, head * d_head, C]
    OR_h = OR.unflatten(1, (n_head, d_head))
    T = (dv_tok @ OR_h)[:, :, None] + (dv_pos @ OR_h)[:, :, :, None]  # [S, head, key, vocab, C]
    total = 3.0 - 2.0 * cfg.attn_rate  # sum of the three keys' weights (1 unless attn_rate != 1)
    v2 = (tok[:, p, n_head:] + pos[:, 2, n_head:])[:, None]  # [S, 1, head * d_head]
    bias = torch.cat([b_in, torch.bmm(b_out[:, None], W_U)[:, 0], pad[:, 0]], 1)
    c = torch.bmm(x2[:, None], R)[:, 0] + total * torch.bmm(v2, OR)[:, 0] + bias  # [S, C]
    return _Tables(T.flatten(0, 3), c, scores, torch.bmm(W_out, W_U))


class _Sums(NamedTuple):
    """Which table rows each example sums, with what weights (also the bags of the table's gradient)."""

    rows: Tensor  # [S * batch, key * head]: T[m, h, group] of each (key, head)
    weight: Tensor  # [S * batch, key, head]: the pattern's weights (detached)
    group: Tensor  # [S, batch, key]: each member's own groups (key, token)
    per_member: int  # groups per member


def _sums(table: Tensor, group: Tensor, weight: Tensor) -> _Sums:
    """The rows of ``h[e] = c + sum_{k, h} weight[e, k, h] * T[h, group[e, k]]`` of every member.

    table [S * head * groups, C] (:class:`_Tables`), group [S, batch, key], weight [S * batch, key, head]."""
    n_member, n, _ = group.shape
    n_head = weight.shape[2]
    per_member = table.shape[0] // (n_member * n_head)
    member = torch.arange(n_member, device=group.device)[:, None, None, None]
    head = torch.arange(n_head, device=group.device)
    rows = ((member * n_head + head) * per_member + group[..., None]).view(n_member * n, -1)
    return _Sums(rows, weight.detach().contiguous(), group, per_member)


def _sum_rows(table: Tensor, c: Tensor, sums: _Sums) -> Tensor:  # [S, batch, C]
    """The sums (:func:`_sums`): one ``embedding_bag`` over the table, then c added in place."""
    h = F.embedding_bag(sums.rows, table, mode="sum", per_sample_weights=sums.weight.flatten(1))
    return h.view(c.shape[0], -1, c.shape[1]).add_(c[:, None])


def _sums_backward(grad: Tensor, table: Tensor, sums: _Sums) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of the table, of c and of the weights, given that of the sums ``grad [S, batch, C]``.

    ``grad_T[m, h, g] = sum over (e, k) with group[e, k] = g of weight[e, k, h] * grad[e]``: an
    ``embedding_bag`` over the rows of ``grad`` with a bag per row of the table (:func:`_bags`).
    ``grad_weight[e, k, h] = grad[e] . T[h, group[e, k]]``: torch's own ``embedding_bag`` gradient
    for per-sample weights."""
    grad_c = grad.sum(1)
    grad = grad.flatten(0, 1)
    n, n_terms = sums.rows.shape
    bag = torch.arange(n, device=grad.device)
    grad_weight = torch.ops.aten._embedding_bag_per_sample_weights_backward(
        grad, table, sums.rows.flatten(), bag * n_terms, bag.repeat_interleave(n_terms), 0
    )
    members, w, offsets = _bags(sums.group, sums.weight, sums.per_member)
    grad_table = F.embedding_bag(members, grad, offsets, mode="sum", per_sample_weights=w)
    return grad_table, grad_c, grad_weight.view_as(sums.weight)


class _RowSums(torch.autograd.Function):
    """The sums of :func:`_sums` [S * batch, C] with their gradients. Inputs: table, c, weight, group."""

    @staticmethod
    def forward(ctx: Any, table: Tensor, c: Tensor, weight: Tensor, group: Tensor) -> Tensor:
        ctx.sums = _sums(table, group, weight)
        ctx.save_for_backward(table)
        return _sum_rows(table, c, ctx.sums).flatten(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grads = _sums_backward(grad.view(ctx.sums.group.shape[0], -1, grad.shape[1]), ctx.saved_tensors[0], ctx.sums)
        return (*grads, None)


class _ReluReadout(torch.autograd.Function):
    """``logits = direct + relu(pre) @ W_L`` per member, from the sums ``h = [pre | direct]`` of
    :func:`_sums`: [S, batch, p]. One step, so that ReLU runs in place on ``h`` and its backward
    writes the gradients of ``pre`` (masked in place) and ``direct`` into one buffer, the gradient
    of ``h`` that :func:`_sums_backward` reads. Inputs: table, c, weight, group, W_L [S, d_mlp, p]."""

    @staticmethod
    def forward(ctx: Any, table: Tensor, c: Tensor, weight: Tensor, group: Tensor, W_L: Tensor) -> Tensor:
        n_member, d_mlp, p = W_L.shape
        ctx.sums = _sums(table, group, weight)
        h = _sum_rows(table, c, ctx.sums)  # [S, batch, C]
        post = h[..., :d_mlp].relu_()
        ctx.save_for_backward(table, W_L, h)
        return _member_mm(post, W_L, h.new_empty(n_member, h.shape[1], p), add=h[..., d_mlp : d_mlp + p])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # grad [S, batch, p]
        table, W_L, h = ctx.saved_tensors
        n_member, d_mlp, p = W_L.shape
        post = h[..., :d_mlp]
        grad_h = torch.empty_like(h)
        grad_pre = _member_mm(grad, W_L.transpose(1, 2), grad_h[..., :d_mlp])
        grad_W_L = _member_mm(grad.transpose(1, 2), post, W_L.new_empty(n_member, p, d_mlp))
        # ReLU's gradient in place with torch's own kernel (0 where the output is 0; masked_fill_ was 20x slower)
        torch.ops.aten.threshold_backward.grad_input(grad_pre, post, 0, grad_input=grad_pre)
        grad_h[..., d_mlp : d_mlp + p] = grad
        grad_h[..., d_mlp + p :] = 0  # the padding
        return (*_sums_backward(grad_h, table, ctx.sums), None, grad_W_L.transpose(1, 2))


def _member_mm(x: Tensor, y: Tensor, out: Tensor, add: Tensor | None = None) -> Tensor:
    """``out[m] = add[m] + x[m] @ y[m]`` for every member (``add`` optional): one matmul per member
    on CPU, where that was ~10% faster than one batched matmul (bmm) at S = 1 and 8; bmm elsewhere."""
    if out.device.type != "cpu":
        return torch.bmm(x, y, out=out) if add is None else torch.baddbmm(add, x, y, out=out)
    for m in range(out.shape[0]):
        if add is None:
            torch.mm(x[m], y[m], out=out[m])
        else:
            torch.addmm(add[m], x[m], y[m], out=out[m])
    return out


def _bags(group: Tensor, weight: Tensor, per_member: int) -> tuple[Tensor, Tensor, Tensor]:
    """A bag per table row, in the table's order: members [n], their weights [n], the bags' offsets.

    group [S, batch, key] (< per_member), weight [S * batch, key, head]. The members of the bag of
    T[m, h, g] are member m's examples e with group[m, e, k] = g (for some key k), weighted by
    weight[e, k, h]. Examples are numbered m * batch + e. A member's bags for one head list its
    entries (e, k) sorted by group, so every head repeats the same members with its own weights."""
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
    return members.flatten(), w.flatten(), offsets.flatten()
