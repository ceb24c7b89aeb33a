"""Optimizer and learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from groklab.config import OptimConfig

__all__ = ["build_optimizer", "build_scheduler"]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The base optimizer with every one of its settings. Weight decay applies to every parameter
    (biases and embeddings included), as in Nanda et al.: decoupled for ``adamw``, coupled L2 (added
    to the gradient, torch's semantics) for ``adam`` and ``sgd``. ``betas`` reach Adam(W) only,
    ``momentum`` SGD only. Interventions (train.interventions) act on the gradients before this
    optimizer's step and never replace it."""
    params = list(model.parameters())
    betas = (cfg.betas[0], cfg.betas[1])
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=betas)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=betas)
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)


def build_scheduler(opt: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup as in Nanda et al.: the factor at step s is min(s / warmup_steps, 1)."""
    if warmup_steps <= 0:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / warmup_steps, 1.0))
