"""The transformer of Nanda et al. 2023 with TransformerLens names, and its fast `=`-only path.

Inputs are ``[a, b, =]`` (``=`` is token p; vocabulary p+1 in, p out); logits are read at the `=`
position. ``forward`` computes every position and every hook (for analysis); ``forward_last``
computes only what the `=` logits need and gives the same logits and gradients:

- position 0 sees only itself (causal mask), so its residual stream at every layer is a function
  of token a alone: it is computed once per vocabulary entry and gathered;
- the first layer's inputs at every position are token functions, so its queries, keys and values
  are vocabulary tables, gathered;
- the last layer needs the keys and values of positions 0 and 1, and query, MLP and unembedding at
  the `=` position only.

A 1-layer model without LayerNorm (the canonical one) goes further: its attention output is folded
through W_O, W_in and W_U into vocabulary tables (``models/folded.py``), so the MLP input and the
direct path to the logits cost a weighted sum of table rows per example instead of matmuls.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groklab.config import ModelConfig
from groklab.models.folded import can_fold, folded_logits, rate_pattern
from groklab.models.hooks import HookedModule, HookPoint

__all__ = ["Transformer", "rate_pattern"]

N_CTX = 3


class Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(d_vocab, d_model) / math.sqrt(d_model))

    def forward(self, tokens: Tensor) -> Tensor:  # [batch, pos] -> [batch, pos, d_model]
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int) -> None:
        super().__init__()
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d_model) / math.sqrt(d_model))

    def forward(self, tokens: Tensor) -> Tensor:  # [batch, pos] -> [batch, pos, d_model]
        return self.W_pos[: tokens.shape[1]].expand(tokens.shape[0], -1, -1)


class Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab_out: int, d_vocab: int) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.randn(d_model, d_vocab_out) / math.sqrt(d_vocab))

    def forward(self, x: Tensor) -> Tensor:  # [..., d_model] -> [..., d_vocab_out]
        return x @ self.W_U


class LayerNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.eps = eps
        self.hook_scale = HookPoint()  # [..., 1]

    def forward(self, x: Tensor) -> Tensor:
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return x / scale * self.w + self.b


class Attention(nn.Module):
    """Causal multi-head attention, per-head weights, scores scaled by 1/sqrt(d_head); no biases.
    ``rate`` is the attention rate (:func:`rate_pattern`)."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, rate: float = 1.0) -> None:
        super().__init__()
        self.rate = rate
        s = 1 / math.sqrt(d_model)
        self.W_Q = nn.Parameter(torch.randn(n_heads, d_model, d_head) * s)
        self.W_K = nn.Parameter(torch.randn(n_heads, d_model, d_head) * s)
        self.W_V = nn.Parameter(torch.randn(n_heads, d_model, d_head) * s)
        self.W_O = nn.Parameter(torch.randn(n_heads, d_head, d_model) * s)
        self.scale = 1 / math.sqrt(d_head)
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]

    def project(self, x: Tensor, W: Tensor) -> Tensor:  # [..., d_model] -> [..., head, d_head]
        return torch.einsum("...m,hmd->...hd", x, W)

    def forward(self, x: Tensor) -> Tensor:  # [batch, pos, d_model] -> [batch, pos, d_model]
        q = self.hook_q(self.project(x, self.W_Q))
        k = self.hook_k(self.project(x, self.W_K))
        v = self.hook_v(self.project(x, self.W_V))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * self.scale
        n = x.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        scores = self.hook_attn_scores(scores.masked_fill(~causal, float("-inf")))
        soft = scores.softmax(-1)
        if self.rate != 1.0:  # masked keys keep weight 0
            soft = torch.where(causal, rate_pattern(soft, self.rate), soft)
        pattern = self.hook_pattern(soft)
        z = self.hook_z(torch.einsum("bhqk,bkhd->bqhd", pattern, v))
        return torch.einsum("bqhd,hdm->bqm", z, self.W_O)

    def mix(self, scores: list[Tensor], values: list[Tensor]) -> Tensor:
        """Attention output of one query given its raw scores and the values of its keys.

        scores: per key [B|1, head]; values: per key [B|1, head, d_head] -> [B, d_model]. Elementwise
        products rather than batched matmuls: the per-example matrices are tiny."""
        pattern = torch.stack(torch.broadcast_tensors(*scores), 1).mul(self.scale).softmax(1)  # [B, key, head]
        pattern = rate_pattern(pattern, self.rate)
        z = sum(pattern[:, j, :, None] * v for j, v in enumerate(values))  # [B, head, d_head]
        assert isinstance(z, Tensor)
        return z.flatten(1) @ self.W_O.flatten(0, 1)


def _dot(k: Tensor, q: Tensor) -> Tensor:  # [..., head, d_head] x [..., head, d_head] -> [..., head]
    return (k * q).sum(-1)


def _take(table: Tensor, idx: Tensor) -> Tensor:  # rows of a vocabulary table (fast backward on CPU)
    return table.index_select(0, idx)


class MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int, act: str) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.randn(d_model, d_mlp) / math.sqrt(d_model))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = nn.Parameter(torch.randn(d_mlp, d_model) / math.sqrt(d_model))
        self.b_out = nn.Parameter(torch.zeros(d_model))
        self.act = F.relu if act == "relu" else F.gelu
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: Tensor) -> Tensor:  # [..., d_model] -> [..., d_model]
        pre = self.hook_pre(F.linear(x, self.W_in.T, self.b_in))
        post = self.hook_post(self.act(pre))
        return F.linear(post, self.W_out.T, self.b_out)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1: nn.Module = LayerNorm(cfg.d_model) if cfg.layernorm else nn.Identity()
        self.ln2: nn.Module = LayerNorm(cfg.d_model) if cfg.layernorm else nn.Identity()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.d_head, cfg.attn_rate)
        self.mlp = MLP(cfg.d_model, cfg.d_mlp, cfg.act)
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
        self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Tensor) -> Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.ln1(x))))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))

    def kv(self, x: Tensor) -> tuple[Tensor, Tensor]:  # [..., d_model] -> 2 x [..., head, d_head]
        h = self.ln1(x)
        return self.attn.project(h, self.attn.W_K), self.attn.project(h, self.attn.W_V)

    def q(self, x: Tensor) -> Tensor:
        return self.attn.project(self.ln1(x), self.attn.W_Q)

    def finish(self, resid_mid: Tensor) -> Tensor:  # resid_mid -> resid_post (MLP part)
        return resid_mid + self.mlp(self.ln2(resid_mid))


class Transformer(HookedModule):
    """``forward(tokens [batch, 3]) -> logits [batch, 3, p]``; ``forward_last -> [batch, p]``."""

    def __init__(self, cfg: ModelConfig, p: int) -> None:
        super().__init__()
        self.cfg, self.p = cfg, p
        d_vocab = p + 1
        self.embed = Embed(d_vocab, cfg.d_model)
        self.pos_embed = PosEmbed(N_CTX, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final: nn.Module = LayerNorm(cfg.d_model) if cfg.layernorm else nn.Identity()
        self.unembed = Unembed(cfg.d_model, p, d_vocab)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        self.setup_hooks()

    @property
    def block_list(self) -> list[Block]:
        return cast(list[Block], list(self.blocks))

    # names analysis relies on, shared with the MLP model
    @property
    def neuron_hooks(self) -> tuple[str, str]:
        last = self.cfg.n_layers - 1
        return f"blocks.{last}.mlp.hook_pre", f"blocks.{last}.mlp.hook_post"

    @property
    def W_L(self) -> Tensor:  # [d_mlp, p]: last MLP's neurons straight to the logits
        return self.block_list[-1].mlp.W_out @ self.unembed.W_U

    @property
    def W_E_tokens(self) -> Tensor:  # [p, d_model]: token rows, `=` dropped
        return self.embed.W_E[: self.p]

    @property
    def fast_path(self) -> str:  # what forward_last runs
        return "folded" if can_fold(self) else "=-only"

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_final(x))

    def eq_logits(self, tokens: Tensor) -> Tensor:
        """Logits at the `=` position through the full hooked forward: [batch, p]."""
        return self(tokens)[:, -1]

    def forward_last(self, tokens: Tensor) -> Tensor:
        """Logits at the `=` position, computing only what they depend on: [batch, p].

        Position 2 must hold the `=` token (p), as every groklab dataset does; its stream is then
        one row until it first attends. A 1-layer model without LayerNorm takes the folded path."""
        if not bool((tokens[:, 2] == self.p).all()):
            raise ValueError("forward_last expects the `=` token (p) at position 2")
        return self.forward_last_unchecked(tokens)

    def forward_last_unchecked(self, tokens: Tensor) -> Tensor:
        """:meth:`forward_last` without its check of position 2 (a data-dependent branch, which
        ``torch.func.vmap`` cannot take; the ensemble checks its inputs once instead)."""
        a, b = tokens[:, 0], tokens[:, 1]
        if can_fold(self):
            return folded_logits(self, a, b)
        W_E, W_pos = self.embed.W_E, self.pos_embed.W_pos
        tab0 = W_E + W_pos[0]  # [vocab, d_model]: position 0's stream, a function of token a alone
        tab1 = W_E + W_pos[1]  # [vocab, d_model]: position 1 before it first attends
        x1: Tensor | None = None  # [batch, d_model]: position 1 after the first layer
        x2 = (W_E[self.p] + W_pos[2]).unsqueeze(0)  # [1 | batch, d_model]: the `=` position
        blocks = self.block_list
        for i, block in enumerate(blocks):
            attn = block.attn
            K0, V0 = block.kv(tab0)  # [vocab, head, d_head]
            q2 = block.q(x2)
            if x1 is None:  # first layer: keys and values of positions 0, 1 are vocabulary tables
                K1, V1 = block.kv(tab1)
                s0, s1 = _take(_dot(K0, q2), a), _take(_dot(K1, q2), b)
                k1, v1 = _take(K1, b), _take(V1, b)
                res1 = _take(tab1, b)
            else:
                k1, v1 = block.kv(x1)
                s0, s1 = _dot(_take(K0, a), q2), _dot(k1, q2)
                res1 = x1
            k2, v2 = block.kv(x2)
            v0 = _take(V0, a)
            out2 = block.finish(x2 + attn.mix([s0, s1, _dot(k2, q2)], [v0, v1, v2]))
            if i < len(blocks) - 1:  # later layers need positions 0 and 1 after this one
                q1 = block.q(res1)
                x1 = block.finish(res1 + attn.mix([_dot(_take(K0, a), q1), _dot(k1, q1)], [v0, v1]))
                tab0 = block.finish(tab0 + attn.mix([_dot(K0, block.q(tab0))], [V0]))
            x2 = out2
        return self.unembed(self.ln_final(x2))
