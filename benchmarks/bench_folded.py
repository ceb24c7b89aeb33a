"""One stacked folded step for S models against S single-model steps, from one command:

    python benchmarks/bench_folded.py [--config quick] [--members 8] [--steps 20] [--threads N]

Each member m is the preset's transformer built with seed m and trained on its own split
(split_seed m, full batch). A single step is ``forward_last`` on that member's batch, float64
cross-entropy, backward and AdamW; S of them run one after the other. The stacked step is
``folded_logits_stacked`` over the members' stacked parameters (``torch.func.stack_module_state``),
the summed float64 cross-entropy of the members, backward and one AdamW over the stacked tensors
(the same update: AdamW is elementwise). Prints median ms of S single steps, of one stacked step,
and their ratio, with and without the optimizer step.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
import torch.nn.functional as F

from groklab.config import load_config
from groklab.data import make_dataset, make_split
from groklab.models import build_model
from groklab.models.folded import folded_logits_stacked
from groklab.train.allocator import tune_allocator


def _median_ms(step, steps: int, warmup: int = 3) -> float:
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="quick")
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()  # as training does
    cfg = load_config(args.config)
    p, S = cfg.task.p, args.members
    ds = make_dataset(cfg.task.op, p)
    batches = []
    for m in range(S):
        train, _ = make_split(ds, cfg.task.train_frac, m)
        rows = ds.rows(torch.from_numpy(train))
        batches.append((ds.tokens[rows], ds.labels[rows]))
    models = [build_model(cfg.model, p, seed=m) for m in range(S)]
    params, _ = torch.func.stack_module_state(models)  # [S, ...] leaves of their own
    a, b = (torch.stack([x[:, i] for x, _ in batches]) for i in (0, 1))
    y = torch.stack([t for _, t in batches])  # [S, batch]
    betas = (cfg.optim.betas[0], cfg.optim.betas[1])
    opts = [
        torch.optim.AdamW(m.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=betas)
        for m in models
    ]
    stacked_opt = torch.optim.AdamW(params.values(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=betas)

    def singles(with_opt: bool) -> None:
        for model, opt, (x, t) in zip(models, opts, batches, strict=True):
            loss = F.cross_entropy(model.forward_last(x).double(), t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if with_opt:
                opt.step()

    def stacked(with_opt: bool) -> None:
        logits = folded_logits_stacked(params, cfg.model, p, a, b).double()  # [S, batch, p]
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]
        stacked_opt.zero_grad(set_to_none=True)
        loss.backward()
        if with_opt:
            stacked_opt.step()

    print(f"{args.config}: S = {S} members, batch {y.shape[1]} each, p {p}, torch threads {torch.get_num_threads()}")
    for with_opt in (False, True):
        t_single = _median_ms(functools.partial(singles, with_opt), args.steps)
        t_stacked = _median_ms(functools.partial(stacked, with_opt), args.steps)
        label = "forward + backward + AdamW" if with_opt else "forward + backward"
        print(
            f"{label:28s} {S} single steps {t_single:7.1f} ms   one stacked step {t_stacked:7.1f} ms   "
            f"stacked / singles = {t_stacked / t_single:.2f}"
        )


if __name__ == "__main__":
    main()
