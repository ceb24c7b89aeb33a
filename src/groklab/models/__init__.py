"""Models: a TransformerLens-named transformer and an MLP, both with hook points."""

from __future__ import annotations

import torch

from groklab.config import ModelConfig
from groklab.models.hooks import HookedModule, HookPoint, eval_mode
from groklab.models.mlp import MLPModel
from groklab.models.transformer import Transformer

__all__ = ["HookPoint", "HookedModule", "MLPModel", "Transformer", "build_model", "eval_mode", "weight_norm_sq"]


def build_model(cfg: ModelConfig, p: int, seed: int | None = None) -> Transformer | MLPModel:
    """The model for ``cfg.arch``; with ``seed``, its initial weights come from that seed alone. Every
    initial parameter is multiplied by ``cfg.init_scale`` (1 = the architecture's own init)."""
    cls: type[Transformer] | type[MLPModel] = Transformer if cfg.arch == "transformer" else MLPModel
    if seed is None:
        model = cls(cfg, p)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(cfg, p)
    if cfg.init_scale != 1:
        with torch.no_grad():
            for prm in model.parameters():
                prm.mul_(cfg.init_scale)
    return model


def weight_norm_sq(model: torch.nn.Module) -> float:
    """Sum of squares of every parameter, in float64 (DESIGN section 6, weight norm)."""
    return float(sum(prm.detach().to(torch.float64).pow(2).sum() for prm in model.parameters()))
