"""Time `groklab figures` and measure report.html on a canonical-size run (p = 113, d_mlp = 512).

Trains the `nanda` model for a short while with dense checkpoints (the drawing cost depends on the
model size and the number of checkpoints, not on whether the run grokked; a run that did not grok
skips the figures that need neuron clusters, and the output lists them), analyses it, then runs
`groklab figures` and `groklab report` as a user would (subprocesses) and reports wall times, the
number of figures and the report's size. Targets: figures within 90 s, report under 15 MB.

Usage:
    python benchmarks/bench_figures.py [--steps 300] [--every 5] [--keep DIR] [--set key=value ...]
    python benchmarks/bench_figures.py --run RUN_DIR     # time an existing run instead
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def groklab(*args: str) -> float:
    """Run ``groklab ARGS`` (pipes: no progress display); return its wall time in seconds."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "groklab", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"groklab {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
    return elapsed


def build_run(path: Path, steps: int, every: int, overrides: list[str]) -> dict[str, float]:
    from groklab.analysis.pipeline import analyze_run
    from groklab.config import load_config
    from groklab.train import start_training

    cfg = load_config("nanda", [f"train.steps={steps}", f"train.checkpoint_every={every}", *overrides])
    t0 = time.perf_counter()
    run, _ = start_training(cfg, path)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = analyze_run(run)
    run.write_analysis(a)
    return {"train_s": round(t_train, 1), "analyze_s": round(time.perf_counter() - t0, 1)}


def measure(path: Path) -> dict[str, object]:
    t_fig = groklab("figures", str(path), "--quiet")
    t_rep = groklab("report", str(path), "--quiet")
    index = json.loads((path / "figures" / "index.json").read_text())
    kinds = [f["kind"] for f in index["figures"]]
    sizes = sorted(((p.stat().st_size, p.name) for p in (path / "figures").iterdir()), reverse=True)
    return {
        "figures_wall_s": round(t_fig, 1),
        "figures_drawing_s": index["elapsed_s"],
        "report_wall_s": round(t_rep, 1),
        "report_mb": round((path / "report.html").stat().st_size / 1e6, 2),
        "png": kinds.count("png"),
        "gif": kinds.count("gif"),
        "skipped": {s["name"]: s["reason"] for s in index["skipped"]},
        "largest_files_kb": {name: size // 1024 for size, name in sizes[:4]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    ap.add_argument("--run", type=Path, help="an existing run directory to time")
    ap.add_argument("--keep", type=Path, help="build the run here and keep it (else a temporary directory)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    out: dict[str, object] = {"cpus": os.cpu_count()}
    if args.run is not None:
        out.update(measure(args.run))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.keep if args.keep is not None else Path(tmp) / "run"
            out.update(build_run(path, args.steps, args.every, args.overrides))
            out["checkpoints"] = len(list((path / "checkpoints").glob("step_*.pt")))
            out.update(measure(path))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
