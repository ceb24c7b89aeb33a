"""Many seeds in one process against one process per seed, measured in one run.

    python benchmarks/bench_ensemble.py [--config quick] [--seeds 0-7] [--out DIR] [--json FILE]

Times the whole command (start-up, training, evaluation, every file written):
``groklab train --config C --seeds S --out DIR/ensemble`` against ``groklab train --config C
--set seed=s --set task.split_seed=s --out DIR/sequential/seed_s`` for each seed one after the
other, and compares each member's grokking step (first evaluation with test accuracy >= 0.95 that
stays there, ``groklab.analysis.grokking.grokking_events``) with its separate run's. The ratio sequential /
ensemble is the throughput gain; the note in the README reports it with the machine.

On a CUDA machine, ``--device cuda`` runs the same comparison there, and ``--largest`` searches
for the largest ensemble of the preset that trains a few steps without running out of memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

GROKLAB = [sys.executable, "-m", "groklab"]


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*GROKLAB, *args, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _grok_step(run_dir: Path) -> int | None:
    from groklab.analysis.grokking import grokking_events
    from groklab.runs import Run

    return grokking_events(Run(run_dir).metric_records()).grokking_step


def _largest(config: str, device: str, start: int = 8) -> int:
    """Double the ensemble until a few steps of it fail (out of memory); the largest that ran."""
    n, ok = start, 0
    while n <= 65536:
        out = Path(f"/tmp/largest_{n}")
        r = subprocess.run(
            [*GROKLAB, "train", "--config", config, "--seeds", f"0-{n - 1}", "--set", f"train.device={device}",
             "--set", "train.steps=3", "--set", "train.eval_every=3", "--out", str(out), "--quiet"],
            capture_output=True, text=True,
        )  # fmt: skip
        subprocess.run(["rm", "-rf", str(out)], check=False)
        if r.returncode != 0:
            break
        ok, n = n, n * 2
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="quick")
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", action="append", default=[], help="extra overrides for both")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_ensemble"))
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--largest", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from groklab.cli_steps import parse_seeds

    seeds = parse_seeds(a.seeds)
    subprocess.run(["rm", "-rf", str(a.out)], check=True)
    common = ["--config", a.config, "--set", f"train.device={a.device}"]
    for s in a.set:
        common += ["--set", s]
    result: dict = {"config": a.config, "seeds": seeds, "device": a.device, "cpus": os.cpu_count()}
    result["ensemble_s"] = _run(["train", *common, "--seeds", a.seeds, "--out", str(a.out / "ensemble")])
    ens = {s: _grok_step(a.out / "ensemble" / f"seed_{s}") for s in seeds}
    result["ensemble_grok"] = ens
    if not a.skip_sequential:
        total = 0.0
        for s in seeds:
            out = a.out / "sequential" / f"seed_{s}"
            total += _run(["train", *common, "--set", f"seed={s}", "--set", f"task.split_seed={s}", "--out", str(out)])
        result["sequential_s"] = total
        result["throughput_ratio"] = total / result["ensemble_s"]
        seq = {s: _grok_step(a.out / "sequential" / f"seed_{s}") for s in seeds}
        result["sequential_grok"] = seq
        result["grok_step_differences"] = {
            s: None if ens[s] is None or seq[s] is None else ens[s] - seq[s] for s in seeds
        }
    if a.largest:
        result["largest_ensemble"] = _largest(a.config, a.device)
    print(json.dumps(result, indent=1))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
