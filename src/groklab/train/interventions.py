"""Interventions that change grokking (DESIGN section 6, "Interventions"): gradient filters, the
orthogonal gradient, the fixed weight norm and the StableMax loss.

Within a training step the order is fixed: gradient -> Grokfast filter -> orthogonal projection ->
base optimizer step -> fixed-norm rescale. The filters and the projection act on ``.grad`` in place
before the base optimizer (built by :func:`groklab.train.optim.build_optimizer` with every one of
its own settings), so nothing about the base optimizer is re-implemented or dropped. Every piece
with state has ``state_dict`` / ``load_state_dict`` holding tensors and plain values only, saved in
each checkpoint, so a resumed run continues bit-identically.

- **Grokfast EMA** (Lee et al. 2024): h starts at the first gradient, then h <- alpha h + (1-alpha) g,
  and the gradient becomes g + lamb h (defaults alpha 0.98, lamb 2.0).
- **Grokfast MA**: the gradient becomes g + lamb * mean of the last ``window`` gradients (the
  current one included) once ``window`` gradients have been seen (defaults window 100, lamb 5.0).
  Its state is ``window`` float32 copies of the gradients plus their float64 sum: a checkpoint of a
  model with N parameters grows by (4 window + 8) N bytes (see the benchmark note for the presets).
- **Orthogonal gradient** (Prieto et al. 2025): per tensor, g_perp = g - (w.g / (w.w + 1e-30)) w,
  rescaled to the norm of g.
- **Fixed weight norm** (Omnigrok, Liu et al. 2023): after every step all parameters are rescaled
  jointly to the total L2 norm they had at initialisation (with ``model.init_scale`` applied).
- **StableMax cross-entropy**: s(x) = x + 1 for x >= 0, 1/(1 - x) for x < 0; p_i = s(z_i) / sum_j s(z_j);
  the loss is -log p_label, in float64.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groklab.config import Config, GrokfastConfig

__all__ = [
    "GROKFAST_DEFAULT_LAMB",
    "FixedNorm",
    "GradientFilter",
    "GrokfastEMA",
    "GrokfastMA",
    "Interventions",
    "orthogonalize_",
    "stablemax_cross_entropy",
    "stablemax_probs",
    "training_loss",
]

GROKFAST_DEFAULT_LAMB = {"ema": 2.0, "ma": 5.0}  # Lee et al. 2024's published defaults


class GradientFilter:
    """A Grokfast filter over a fixed list of parameters; ``apply_`` rewrites their ``.grad``."""

    def apply_(self, params: list[nn.Parameter]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class GrokfastEMA(GradientFilter):
    def __init__(self, alpha: float, lamb: float) -> None:
        self.alpha, self.lamb = alpha, lamb
        self.h: list[Tensor] | None = None  # the slow gradient, one tensor per parameter

    @torch.no_grad()
    def apply_(self, params: list[nn.Parameter]) -> None:
        grads = _grads(params)
        if self.h is None:
            self.h = [g.clone() for g in grads]
        else:
            for h, g in zip(self.h, grads, strict=True):
                h.mul_(self.alpha).add_(g, alpha=1 - self.alpha)
        for h, g in zip(self.h, grads, strict=True):
            g.add_(h, alpha=self.lamb)

    def state_dict(self) -> dict[str, Any]:
        return {"h": self.h}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.h = state["h"]


class GrokfastMA(GradientFilter):
    """The window is kept as a list of gradients plus their running sum in float64 (so a step costs
    one add and one subtract per parameter, not a sum over the window)."""

    def __init__(self, window: int, lamb: float) -> None:
        self.window, self.lamb = window, lamb
        self.history: list[list[Tensor]] = []  # oldest first; each entry one tensor per parameter
        self.total: list[Tensor] | None = None  # float64 sum of the gradients in ``history``

    @torch.no_grad()
    def apply_(self, params: list[nn.Parameter]) -> None:
        grads = _grads(params)
        if self.total is None:
            self.total = [torch.zeros_like(g, dtype=torch.float64) for g in grads]
        self.history.append([g.clone() for g in grads])
        for t, g in zip(self.total, grads, strict=True):
            t.add_(g)
        if len(self.history) > self.window:
            for t, old in zip(self.total, self.history.pop(0), strict=True):
                t.sub_(old)
        if len(self.history) < self.window:
            return
        for t, g in zip(self.total, grads, strict=True):
            g.add_((t / self.window).to(g.dtype), alpha=self.lamb)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.total = state["history"], state["total"]


def build_filter(cfg: GrokfastConfig) -> GradientFilter | None:
    if cfg.kind == "none":
        return None
    lamb = GROKFAST_DEFAULT_LAMB[cfg.kind] if cfg.lamb is None else cfg.lamb
    return GrokfastEMA(cfg.alpha, lamb) if cfg.kind == "ema" else GrokfastMA(cfg.window, lamb)


@torch.no_grad()
def orthogonalize_(params: list[nn.Parameter]) -> None:
    """Per tensor: remove the gradient's component along the weights, then restore its norm."""
    for w, g in zip(params, _grads(params), strict=True):
        norm = g.norm()
        g.sub_(w, alpha=float((w * g).sum() / ((w * w).sum() + 1e-30)))
        g.mul_(norm / g.norm().clamp_min(1e-30))


def total_norm(params: list[nn.Parameter]) -> float:
    """The joint L2 norm of all parameters, in float64."""
    return math.sqrt(sum(float(w.detach().to(torch.float64).pow(2).sum()) for w in params))


class FixedNorm:
    """Holds the joint L2 norm of the parameters at its value at initialisation."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.target = total_norm(params)

    @torch.no_grad()
    def apply_(self, params: list[nn.Parameter]) -> None:
        factor = self.target / max(total_norm(params), 1e-300)
        for w in params:
            w.mul_(factor)

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target = float(state["target"])


class Interventions:
    """The configured interventions around one optimizer step: call :meth:`before_step` between
    ``backward`` and ``opt.step()``, :meth:`after_step` after it. With every option off both are
    no-ops and the training step is the plain one."""

    def __init__(self, cfg: Config, model: nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.filter = build_filter(cfg.optim.grokfast)
        self.orthogonal = cfg.optim.orthogonal
        self.fixed_norm = FixedNorm(self.params) if cfg.optim.fixed_norm else None

    @property
    def active(self) -> bool:
        return self.filter is not None or self.orthogonal or self.fixed_norm is not None

    def before_step(self) -> None:
        if self.filter is not None:
            self.filter.apply_(self.params)
        if self.orthogonal:
            orthogonalize_(self.params)

    def after_step(self) -> None:
        if self.fixed_norm is not None:
            self.fixed_norm.apply_(self.params)

    def state_dict(self) -> dict[str, Any]:
        return {
            "filter": None if self.filter is None else self.filter.state_dict(),
            "fixed_norm": None if self.fixed_norm is None else self.fixed_norm.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        if self.filter is not None and state.get("filter") is not None:
            self.filter.load_state_dict(state["filter"])
        if self.fixed_norm is not None and state.get("fixed_norm") is not None:
            self.fixed_norm.load_state_dict(state["fixed_norm"])


def _grads(params: list[nn.Parameter]) -> list[Tensor]:
    grads = [p.grad for p in params]
    if any(g is None for g in grads):
        raise RuntimeError("an intervention needs every parameter's gradient (call backward first)")
    return grads  # type: ignore[return-value]


# -- losses -------------------------------------------------------------------------------------------
def _s(x: Tensor) -> Tensor:
    """StableMax's s(x): x + 1 for x >= 0, 1 / (1 - x) below (continuous, positive, linear growth)."""
    return torch.where(x >= 0, x + 1, 1 / (1 - x.clamp_max(0)))


def stablemax_probs(logits: Tensor) -> Tensor:
    """p_i = s(z_i) / sum_j s(z_j) over the last axis."""
    s = _s(logits)
    return s / s.sum(-1, keepdim=True)


def stablemax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean of -log p_label under StableMax, computed in float64."""
    s = _s(logits.to(torch.float64))
    return (s.sum(-1).log() - s.gather(-1, labels[:, None]).squeeze(-1).log()).mean()


def training_loss(name: str, logits: Tensor, labels: Tensor, dtype: torch.dtype) -> Tensor:
    """The objective ``train.loss`` names: cross-entropy in ``dtype`` or StableMax (float64)."""
    if name == "stablemax":
        return stablemax_cross_entropy(logits, labels)
    return F.cross_entropy(logits.to(dtype), labels)
