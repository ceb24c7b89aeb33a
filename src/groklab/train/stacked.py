"""Stacked parameters: the arithmetic of an ensemble's batched step (DESIGN section 9).

Member m's parameters are slice m of tensors with a leading member dimension. The forward pass runs
once for all members: the folded path of a 1-layer transformer without LayerNorm over all members'
tables at once (:func:`groklab.models.folded.folded_logits_stacked`), any other model through
``torch.func.vmap`` of its ``forward_last``. The optimizers are the element-wise update rules of
torch's AdamW, Adam and SGD (single-tensor form, the one torch runs on CPU) with the learning
rate and weight decay per member, so points of a sweep that differ only in those can share a
batch; their states convert to and from torch's ``state_dict`` layout, so each member's checkpoint
is an ordinary one that ``groklab train --resume`` continues on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from groklab.config import OptimConfig
from groklab.models import MLPModel, Transformer
from groklab.models.folded import can_fold, folded_logits_stacked

__all__ = ["StackedOptimizer", "stack_params", "stacked_logits"]


def stack_params(models: Sequence[nn.Module]) -> dict[str, Tensor]:
    """The members' parameters stacked along a new leading dimension, as leaf tensors with grad."""
    names = [n for n, _ in models[0].named_parameters()]
    tables = [dict(m.named_parameters()) for m in models]
    return {n: torch.stack([t[n].detach() for t in tables]).requires_grad_() for n in names}


class _Last(nn.Module):
    """``forward`` = the template model's ``forward_last`` without its input check (for vmap)."""

    def __init__(self, model: Transformer | MLPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        return self.model.forward_last_unchecked(tokens)


def stacked_logits(template: Transformer | MLPModel, params: dict[str, Tensor], tokens: Tensor) -> Tensor:
    """Logits at `=` of every member: tokens [S, N, 3] -> [S, N, p]. ``template`` gives the
    architecture (its own weights are not used)."""
    if isinstance(template, Transformer):
        if not bool((tokens[..., 2] == template.p).all()):
            raise ValueError("the ensemble expects the `=` token (p) at position 2")
        if can_fold(template):
            return folded_logits_stacked(params, template.cfg, template.p, tokens[..., 0], tokens[..., 1])
    wrapped = _Last(template)
    prefixed = {f"model.{n}": t for n, t in params.items()}
    return vmap(lambda prm, x: functional_call(wrapped, prm, (x,)))(prefixed, tokens)


def _per_member(values: Sequence[float], like: Tensor) -> Tensor:
    """Per-member scalars as a float tensor that broadcasts against ``like`` [S, ...]."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *[1] * (like.dim() - 1))


def _uniform(values: Sequence[float]) -> float | None:
    """The one value when every member has it (then torch's own scalar calls are used, so a member
    is updated bit for bit as by torch's optimizer), else None."""
    return values[0] if all(v == values[0] for v in values) else None


def _add_scaled(out: Tensor, values: Sequence[float], x: Tensor) -> Tensor:
    """``out + values[m] * x`` per member (in place when ``out`` is the parameter)."""
    v = _uniform(values)
    return out.add_(x, alpha=v) if v is not None else out.add_(x * _per_member(values, x))


class StackedOptimizer:
    """torch's AdamW / Adam / SGD update on stacked parameters, with ``lr`` and ``weight_decay`` per
    member (betas, eps and momentum shared). Every member has taken the same number of steps."""

    def __init__(self, params: dict[str, Tensor], cfg: OptimConfig, weight_decay: Sequence[float]) -> None:
        self.params, self.name = params, cfg.name
        self.betas, self.eps, self.momentum = (cfg.betas[0], cfg.betas[1]), 1e-8, cfg.momentum
        self.weight_decay = list(weight_decay)
        self.step_count = 0
        self.state: dict[str, dict[str, Tensor | None]] = {n: {} for n in params}

    def step(self, lr: Sequence[float]) -> None:
        """One update with learning rate ``lr[m]`` for member m (its schedule's value at this step)."""
        self.step_count += 1
        with torch.no_grad():
            for name, param in self.params.items():
                if param.grad is None:
                    continue
                if self.name == "sgd":
                    self._sgd(name, param, param.grad, lr)
                else:
                    self._adam(name, param, param.grad, lr)

    def _adam(self, name: str, param: Tensor, grad: Tensor, lr: Sequence[float]) -> None:
        st, (beta1, beta2), wd = self.state[name], self.betas, self.weight_decay
        if not st:
            st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(param), torch.zeros_like(param)
        exp_avg, exp_avg_sq = st["exp_avg"], st["exp_avg_sq"]
        assert exp_avg is not None and exp_avg_sq is not None
        if self.name == "adamw":
            decay = [1 - r * w for r, w in zip(lr, wd, strict=True)]
            param.mul_(_uniform(decay) or _per_member(decay, param))
        elif any(wd):
            grad = _add_scaled(grad.clone(), wd, param)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.step_count
        bias_correction2_sqrt = (1 - beta2**self.step_count) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        step_size = [-r / bias_correction1 for r in lr]
        if (v := _uniform(step_size)) is not None:
            param.addcdiv_(exp_avg, denom, value=v)
        else:
            param.add_(_per_member(step_size, param) * exp_avg / denom)

    def _sgd(self, name: str, param: Tensor, grad: Tensor, lr: Sequence[float]) -> None:
        if any(self.weight_decay):
            grad = _add_scaled(grad.clone(), self.weight_decay, param)
        if self.momentum != 0:
            buf = self.state[name].get("momentum_buffer")
            if buf is None:
                buf = self.state[name]["momentum_buffer"] = grad.detach().clone()
            else:
                buf.mul_(self.momentum).add_(grad)
            grad = buf
        _add_scaled(param, [-r for r in lr], grad)

    def zero_grad(self) -> None:
        for param in self.params.values():
            param.grad = None

    # -- members: to and from torch's per-model optimizer state ---------------------------------
    def member_state(self, m: int) -> list[dict[str, Any]]:
        """Member m's state per parameter, in the order of ``params``, as torch's optimizer keeps it."""
        out = []
        for name in self.params:
            st = self.state[name]
            if self.name == "sgd":
                buf = st.get("momentum_buffer")
                out.append({"momentum_buffer": None if buf is None else buf[m].clone()})
            elif not st:
                out.append({})
            else:
                step = torch.tensor(float(self.step_count), dtype=torch.float32)
                out.append({"step": step, **{k: v[m].clone() for k, v in st.items() if v is not None}})
        return out

    def load_members(self, states: Sequence[Sequence[dict[str, Any]]], step: int) -> None:
        """Stack the members' torch states (:meth:`member_state`'s layout); ``step`` = steps taken."""
        self.step_count = step
        for i, name in enumerate(self.params):
            per = [s[i] for s in states]
            keys = {k for s in per for k in s if k != "step"}
            for key in keys:
                vals = [s.get(key) for s in per]
                if any(v is None for v in vals):
                    if not all(v is None for v in vals):
                        raise ValueError(f"optimizer state {key} of {name} missing for some members")
                    continue
                self.state[name][key] = torch.stack([v.to(self.params[name]) for v in vals if v is not None])

    def keep(self, index: Tensor) -> None:
        """Keep the members at ``index`` (the others have left the batch); params are re-stacked by
        the caller, states here."""
        for st in self.state.values():
            for k, v in st.items():
                if v is not None:
                    st[k] = v.index_select(0, index)
        self.weight_decay = [self.weight_decay[int(i)] for i in index]
