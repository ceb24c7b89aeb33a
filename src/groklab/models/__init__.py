"""Models: a TransformerLens-named transformer and an MLP, both with hook points."""

from __future__ import annotations

import torch

from groklab.config import ModelConfig
from groklab.models.hooks import HookedModule, HookPoint, eval_mode
from groklab.models.mlp import MLPModel
from groklab.models.transformer import Transformer

__all__ = ["HookPoint", "HookedModule", "MLPModel", "Transformer", "build_model", "eval_mode"]


def build_model(cfg: ModelConfig, p: int, seed: int | None = None) -> Transformer | MLPModel:
    """The model for ``cfg.arch``; with ``seed``, its initial weights come from that seed alone."""
    cls: type[Transformer] | type[MLPModel] = Transformer if cfg.arch == "transformer" else MLPModel
    if seed is None:
        return cls(cfg, p)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(cfg, p)
