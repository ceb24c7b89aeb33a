"""Time `groklab analyze` on a canonical-size (`nanda`) run with about 200 snapshots.

The analysis cost depends on the model's size and the number of saved steps, not on whether the
run grokked, so the run directory is fabricated: `nanda` is trained for a few steps (config,
split, metrics and the early checkpoints are real), then ``--snapshots`` weights-only snapshots
are written at steps 100, 200, ... on a straight line from the initial weights to a planted
Fourier-multiplication model (five key frequencies, eight neurons each, the rest of the weights
small). The planted end point gives the final step neuron clusters, hence key frequencies, so
every progress measure is computed as in a grokked run (with no key frequencies the Fourier
measures would be skipped and the bench would flatter the analysis).

Prints one JSON object: the snapshot and step counts, the analysis time, and its breakdown: per
step (loading, progress measures and their parts, the spectra series) and once per run (neurons,
ablations, the final Fourier record). Times are wall seconds; ``cpu_s`` is the process CPU time
(both threads), which a busy shared machine inflates less.

Usage: python benchmarks/bench_analyze.py [--snapshots 200] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from groklab.analysis import pipeline, progress
from groklab.config import load_config
from groklab.models import Transformer
from groklab.runs import Run
from groklab.train import start_training

KEYS = [14, 35, 41, 42, 52]
PHASES = 8  # neurons per key frequency, phases 2 pi m / PHASES


def planted_state(model: Transformer, noise: float = 0.02) -> dict[str, torch.Tensor]:
    """Weights of ``model``'s shapes that compute (a + b) mod p through ``KEYS`` (as the hand-built
    models of tests/analysis/test_handbuilt.py, in head 0 of a 4-head model), plus ``noise`` times
    the model's own weights everywhere."""
    p, nk = model.p, len(KEYS)
    x = torch.arange(p, dtype=torch.float64)
    state = {k: noise * v.clone() for k, v in model.state_dict().items()}
    W_E, W_U = state["embed.W_E"], state["unembed.W_U"]
    attn, mlp = "blocks.0.attn.", "blocks.0.mlp."
    state[attn + "W_Q"].zero_(), state[attn + "W_K"].zero_()  # uniform attention over a, b, =
    for d in range(2 * nk):
        state[attn + "W_V"][0, d, d] = 1.0
        state[attn + "W_O"][0, d, d] = 3.0
    for i, k in enumerate(KEYS):
        w = 2 * math.pi * k / p
        W_E[:p, 2 * i], W_E[:p, 2 * i + 1] = torch.cos(w * x), torch.sin(w * x)
        o = 2 * nk + 2 * i
        W_U[o], W_U[o + 1] = 40 * torch.cos(w * x), 40 * torch.sin(w * x)
        for m in range(PHASES):
            n, phi = i * PHASES + m, 2 * math.pi * m / PHASES
            state[mlp + "W_in"][2 * i, n], state[mlp + "W_in"][2 * i + 1, n] = math.cos(phi), -math.sin(phi)
            state[mlp + "W_out"][n, o], state[mlp + "W_out"][n, o + 1] = math.cos(2 * phi), -math.sin(2 * phi)
    return state


def fabricate(path: Path, n_snapshots: int) -> Run:
    cfg = load_config("nanda", ["train.steps=100", "train.snapshot_every=null", "train.device=cpu"])
    run, _ = start_training(cfg, path)
    model = run.model(step=0)
    start, end = model.state_dict(), planted_state(model)
    for i in range(1, n_snapshots + 1):
        t = i / n_snapshots
        run.save_snapshot(100 * i, {k: (1 - t) * start[k] + t * end[k] for k in start})
    return run


class Timer:
    """Wraps functions in a module namespace and adds up their wall and CPU time."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, module: Any, name: str, label: str | None = None) -> None:
        fn: Callable[..., Any] = getattr(module, name)
        label = label or name

        def timed(*args: Any, **kw: Any) -> Any:
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                self.wall[label] += time.perf_counter() - w
                self.cpu[label] += time.process_time() - c
                self.calls[label] += 1

        setattr(module, name, timed)

    def ms_per(self, labels: list[str], per: int) -> dict[str, dict[str, float]]:
        return {
            k: {"wall": round(1000 * self.wall[k] / per, 1), "cpu": round(1000 * self.cpu[k] / per, 1)} for k in labels
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshots", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    timer = Timer()
    per_step = [
        (pipeline, "progress_measures", "progress_measures (all)"),
        (progress, "eq_activations", "  forward + hooks (eq_activations)"),
        (progress, "nll", "  cross-entropies (nll)"),
        (progress, "project_sum", "  P_K L (project_sum)"),
        (progress, "trig_fve", "  trig FVE x3"),
        (progress, "cos_fraction", "  cos fraction"),
        (progress, "gini", "  Gini x2"),
        (pipeline, "_spectra", "spectra series (_spectra)"),
    ]
    once = [
        (pipeline, "analyze_neurons", "neurons (FVE, clusters)"),
        (pipeline, "ablation_report", "ablations"),
        (pipeline, "fourier_record", "final Fourier record"),
        (pipeline, "_summary", "summary (events, phases, criteria)"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = fabricate(Path(tmp) / "run", args.snapshots)
        t_make = time.perf_counter() - t0
        n_steps = len(run.steps)
        t0 = time.perf_counter()
        states = list(run.states())
        t_load = time.perf_counter() - t0
        del states
        for module, name, label in per_step + once:
            timer.wrap(module, name, label)
        w, c = time.perf_counter(), time.process_time()
        result = pipeline.analyze_run(run)
        t_analyze, c_analyze = time.perf_counter() - w, time.process_time() - c
        print(
            json.dumps(
                {
                    "snapshots": len(run.snapshots()),
                    "checkpoints": len(run.checkpoints()),
                    "steps_analysed": len(result.progress),
                    "distinct_steps": n_steps,
                    "threads": torch.get_num_threads(),
                    "fabricate_s": round(t_make, 1),
                    "analyze_s": round(t_analyze, 1),
                    "analyze_cpu_s": round(c_analyze, 1),
                    "analyze_ms_per_step": round(1000 * t_analyze / n_steps, 1),
                    "load_all_states_s": round(t_load, 2),
                    "per_step_ms": timer.ms_per([label for *_, label in per_step], n_steps),
                    "once_ms": timer.ms_per([label for *_, label in once], 1),
                    "key_frequencies": result.summary.key_frequencies,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
