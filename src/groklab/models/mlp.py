"""An MLP for modular arithmetic: embed a and b (one shared table), concatenate, hidden layers, unembed.

In the spirit of the small MLP studies of grokking. Names follow the transformer where the roles
match, so analysis code reads both: ``embed.W_E [p, d_embed]``, the last hidden layer's
activations at ``blocks.{i}.mlp.hook_pre|hook_post`` and ``unembed.W_U [d_hidden, p]``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groklab.config import ModelConfig
from groklab.models.hooks import HookedModule, HookPoint

__all__ = ["MLPModel"]


class HiddenLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, act: str) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.randn(d_in, d_out) / math.sqrt(d_in))
        self.b_in = nn.Parameter(torch.zeros(d_out))
        self.act = F.relu if act == "relu" else F.gelu
        self.hook_pre = HookPoint()  # [batch, d_out]
        self.hook_post = HookPoint()  # [batch, d_out]

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_post(self.act(self.hook_pre(x @ self.W_in + self.b_in)))


class Layer(nn.Module):  # a container so hook names read blocks.{i}.mlp.hook_*
    def __init__(self, d_in: int, d_out: int, act: str) -> None:
        super().__init__()
        self.mlp = HiddenLayer(d_in, d_out, act)


class TokenEmbed(nn.Module):
    def __init__(self, p: int, d_embed: int) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(p, d_embed) / math.sqrt(d_embed))


class Readout(nn.Module):
    def __init__(self, d_in: int, p: int) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.randn(d_in, p) / math.sqrt(d_in))
        self.b_U = nn.Parameter(torch.zeros(p))


class MLPModel(HookedModule):
    """``forward(tokens [batch, 3]) -> logits [batch, p]`` (the `=` token is ignored)."""

    fast_path = "full"  # what forward_last runs: the forward itself, which reads only a and b

    def __init__(self, cfg: ModelConfig, p: int) -> None:
        super().__init__()
        self.cfg, self.p = cfg, p
        self.embed = TokenEmbed(p, cfg.d_embed)
        sizes = [2 * cfg.d_embed, *cfg.hidden]
        self.blocks = nn.ModuleList(Layer(i, o, cfg.act) for i, o in zip(sizes[:-1], sizes[1:], strict=True))
        self.unembed = Readout(sizes[-1], p)
        self.hook_embed = HookPoint()  # [batch, 2 * d_embed]
        self.setup_hooks()

    @property
    def neuron_hooks(self) -> tuple[str, str]:
        last = len(self.blocks) - 1
        return f"blocks.{last}.mlp.hook_pre", f"blocks.{last}.mlp.hook_post"

    @property
    def W_L(self) -> Tensor:  # [d_hidden, p]
        return self.unembed.W_U

    @property
    def W_E_tokens(self) -> Tensor:  # [p, d_embed]
        return self.embed.W_E

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.hook_embed(self.embed.W_E[tokens[:, :2]].flatten(1))
        for layer in cast(list[Layer], list(self.blocks)):
            x = layer.mlp(x)
        return x @ self.unembed.W_U + self.unembed.b_U

    def eq_logits(self, tokens: Tensor) -> Tensor:
        return self(tokens)

    def forward_last(self, tokens: Tensor) -> Tensor:
        return self(tokens)

    def forward_last_unchecked(self, tokens: Tensor) -> Tensor:  # the transformer's name for the same
        return self(tokens)
