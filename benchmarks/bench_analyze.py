"""Time `groklab analyze` on a canonical-size run with about 100 checkpoints.

Trains the `nanda` model for a short while with dense checkpoints (the analysis cost depends on
the model and the number of checkpoints, not on whether the run grokked), then times the
analysis in-process. Usage: python benchmarks/bench_analyze.py [--steps 1000] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from groklab.analysis.pipeline import analyze_run
from groklab.config import load_config
from groklab.train import start_training


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("nanda", [f"train.steps={args.steps}", f"train.checkpoint_every={args.every}"])
        t0 = time.perf_counter()
        run, _ = start_training(cfg, Path(tmp) / "run")
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = analyze_run(run)
        t_analyze = time.perf_counter() - t0
        print(json.dumps({
            "checkpoints": len(run.checkpoints()),
            "train_s": round(t_train, 1),
            "analyze_s": round(t_analyze, 1),
            "analyze_ms_per_checkpoint": round(1000 * t_analyze / len(run.checkpoints()), 1),
            "key_frequencies": result.summary["key_frequencies"],
        }))


if __name__ == "__main__":
    main()
