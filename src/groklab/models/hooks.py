"""Hook points in the TransformerLens style: name an activation, read it, or replace it.

A :class:`HookPoint` is an identity module placed where an activation is computed. Models derive
from :class:`HookedModule`, which names every hook point by its module path and offers
``run_with_cache`` (read) and ``run_with_hooks`` (read or replace). Hooks live only for the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["HookFn", "HookPoint", "HookedModule", "eval_mode", "one_thread"]

HookFn = Callable[[Tensor, "HookPoint"], Tensor | None]  # return a tensor to replace the activation


class HookPoint(nn.Module):
    """Identity; a place where hooks can read or replace an activation."""

    def __init__(self) -> None:
        super().__init__()
        self.name: str = ""

    def forward(self, x: Tensor) -> Tensor:
        return x

    @property
    def hooked(self) -> bool:
        """Whether a forward hook (this point's own or a global one) would see its activation, so
        that a fused computation must run the point instead of skipping it."""
        m = nn.modules.module
        return bool(
            self._forward_hooks or self._forward_pre_hooks or m._global_forward_hooks or m._global_forward_pre_hooks
        )


class HookedModule(nn.Module):
    """Base for models with hook points. Call :meth:`setup_hooks` at the end of ``__init__``."""

    def setup_hooks(self) -> None:
        self.hook_dict: dict[str, HookPoint] = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module

    @contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[str | Callable[[str], bool], HookFn]]) -> Iterator[None]:
        """Attach ``(name or name-filter, fn)`` hooks for the duration of the block."""
        handles = []
        try:
            for key, fn in fwd_hooks:
                names = [key] if isinstance(key, str) else [n for n in self.hook_dict if key(n)]
                for name in names:
                    if name not in self.hook_dict:
                        raise KeyError(f"no hook point named {name!r}")
                    hp = self.hook_dict[name]
                    handles.append(hp.register_forward_hook(lambda m, inp, out, fn=fn: fn(out, m)))
            yield
        finally:
            for h in handles:
                h.remove()

    def run_with_hooks(self, *args: Any, fwd_hooks: Sequence[tuple[Any, HookFn]] = (), **kwargs: Any) -> Tensor:
        with self.hooks(fwd_hooks):
            return self(*args, **kwargs)

    def run_with_cache(
        self, *args: Any, names_filter: Callable[[str], bool] | Sequence[str] | None = None, **kwargs: Any
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Forward pass returning ``(output, cache)`` with every (or every filtered) hook's activation."""
        if names_filter is None:
            keep: Callable[[str], bool] = lambda n: True  # noqa: E731
        elif callable(names_filter):
            keep = names_filter
        else:
            wanted = set(names_filter)
            keep = wanted.__contains__
        cache: dict[str, Tensor] = {}

        def save(x: Tensor, hp: HookPoint) -> None:
            cache[hp.name] = x.detach()

        out = self.run_with_hooks(*args, fwd_hooks=[(keep, save)], **kwargs)
        return out, cache


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and no-grad for the block; restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread for the block, the previous count restored after.

    For many small tensor ops (ablations, per-checkpoint views of small models): on a busy 2-core
    machine two OpenMP threads made them several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
