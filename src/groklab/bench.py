"""Timing of the training step: the fast `=`-only path against the plain full forward."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from groklab.config import Config
from groklab.data import make_dataset, make_split
from groklab.models import build_model
from groklab.train.allocator import tune_allocator
from groklab.train.loop import resolve_device
from groklab.train.optim import build_optimizer

__all__ = ["bench_training_step"]


def _time_steps(cfg: Config, path: str, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int) -> list[float]:
    device = x.device
    model = build_model(cfg.model, cfg.task.p, seed=cfg.seed).to(device)
    forward = model.forward_last if path == "fast" else model.eq_logits
    opt = build_optimizer(model, cfg.optim)
    loss_dtype = getattr(torch, cfg.train.loss_dtype)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = F.cross_entropy(forward(x).to(loss_dtype), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return times


def bench_training_step(cfg: Config, steps: int = 30, warmup: int = 5) -> dict[str, Any]:
    """Median and min ms per full-batch training step through each path, and fast/full.

    ``fast_path`` names what ``forward_last`` runs for this model (``Transformer.fast_path``).
    Both paths run under the allocator settings training uses (``allocator_tuned``: glibc's
    thresholds raised, train/allocator.py)."""
    tuned = tune_allocator()
    device = resolve_device(cfg.train.device)
    ds = make_dataset(cfg.task.op, cfg.task.p)
    train, _ = make_split(ds, cfg.task.train_frac, cfg.task.split_seed)
    rows = ds.rows(torch.from_numpy(train))
    x, y = ds.tokens[rows].to(device), ds.labels[rows].to(device)
    out: dict[str, Any] = {
        "config": cfg.name,
        "device": str(device),
        "batch": len(y),
        "steps": steps,
        "threads": torch.get_num_threads(),
        "allocator_tuned": tuned,
    }
    out["fast_path"] = build_model(cfg.model, cfg.task.p, seed=cfg.seed).fast_path
    for path in ("fast", "full"):
        t = _time_steps(cfg, path, x, y, steps, warmup)
        out[path] = {"median_ms": statistics.median(t), "min_ms": min(t), "mean_ms": statistics.fmean(t)}
    out["ratio"] = out["fast"]["median_ms"] / out["full"]["median_ms"]
    return out
