"""The interventions benchmark, from one command:

    python benchmarks/bench_interventions.py --out bench-out/interventions [--workers 2]
        [--stages published,tune,eval]

Stages (each a packaged sweep run by groklab's sweep runner into OUT/<sweep>; a stage that has run
is skipped point by point, so the command resumes):
  published  `grokfast_mul97`: Grokfast's own setting (x*y mod 97, 50% data, Adam, no weight decay),
             baseline vs Grokfast EMA, seed 0: does our filter reproduce their speed-up?
  tune       `interventions_tune`: AdamW lr x weight decay on tuning seeds 100-101; the winner is
             the point with the smallest median steps to grokking (never grokked = the budget + 1).
  eval       `interventions` with the tuned lr and weight decay filled in (OUT/interventions.yaml):
             7 methods x 5 paired seeds; writes OUT/table.md, OUT/table.json, OUT/interventions.png.
  table      only rebuild the table and figure from OUT/interventions/runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

from groklab.runs import Run
from groklab.sweeps import expand, load_spec
from groklab.sweeps.aggregate import point_row
from groklab.sweeps.executors import make_executor
from groklab.sweeps.methods import method_figure, method_markdown, method_table
from groklab.sweeps.runner import run_sweep
from groklab.sweeps.spec import parse_spec

TUNED_LR_ONLY = ("orthogonal", "stablemax", "fixed_norm")  # the tuned lr, their own weight decay (0)


def sweep(spec, out: Path, workers: int, threads: int | None = None) -> list[dict]:
    """Run ``spec`` into ``out``; ``threads``: torch threads per point (default cores // workers)."""
    points = expand(spec)
    pool, default_threads = make_executor("local", workers)
    threads = threads or default_threads
    t0 = time.time()
    outcome = run_sweep(spec, points, out, pool, threads=threads)
    print(f"{spec.name}: {outcome.counts} in {time.time() - t0:.0f} s -> {out}", flush=True)
    return outcome.rows


def published(out: Path, workers: int, threads: int | None) -> dict:
    rows = sweep(load_spec("grokfast_mul97"), out / "grokfast_mul97", workers, threads)
    result = {
        f"{r['optim.grokfast.kind']} wd={r['optim.weight_decay']}": {
            "grokking_step": r["grokking_step"], "memorization_step": r["memorization_step"], "steps": r["steps"],
            "budget": r["train.steps"],
        }
        for r in rows
    }  # fmt: skip
    print("published setting:", result, flush=True)
    return result


def tune(out: Path, workers: int, threads: int | None) -> dict:
    spec = load_spec("interventions_tune")
    rows = sweep(spec, out / "interventions_tune", workers, threads)
    budget = spec.set["train.steps"]
    by_point: dict[tuple[float, float], list[int]] = {}
    for r in rows:
        g = r["grokking_step"]
        by_point.setdefault((r["optim.lr"], r["optim.weight_decay"]), []).append(budget + 1 if g in (None, "") else g)
    scores = {k: (statistics.median(v), max(v)) for k, v in by_point.items()}
    (lr, wd), score = min(scores.items(), key=lambda kv: kv[1])
    result = {
        "lr": lr,
        "weight_decay": wd,
        "median_steps": score[0],
        "grid": {f"{k[0]}/{k[1]}": v for k, v in by_point.items()},
    }
    print("tuned AdamW:", result, flush=True)
    return result


def evaluate(out: Path, workers: int, threads: int | None, tuned: dict) -> None:
    spec = load_spec("interventions")
    raw = json.loads(json.dumps(spec.raw))
    zipped = raw["zip"]
    for i, name in enumerate(zipped["name"]):
        if name == "adamw_tuned":  # the tuned lr and weight decay
            zipped["optim.lr"][i], zipped["optim.weight_decay"][i] = tuned["lr"], tuned["weight_decay"]
        elif name in TUNED_LR_ONLY:
            zipped["optim.lr"][i] = tuned["lr"]
    (out / "interventions.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sweep(parse_spec(raw, where="interventions (tuned)"), out / "interventions", workers, threads)
    write_table(out, tuned)


def write_table(out: Path, tuned: dict) -> None:
    """The table and figure from the evaluation's run directories (each run's own config names its
    method, seed and budget), so they can be rebuilt without the sweep's point list."""
    sweep_dir = out / "interventions"
    rows = []
    for path in sorted((sweep_dir / "runs").iterdir()):
        cfg = Run(path).config
        row = point_row(sweep_dir, path.name, {"name": cfg.name, "seed": cfg.seed})
        rows.append(row | {"budget": cfg.train.steps})
    table = method_table(rows, baseline="adamw_tuned", budget_key="budget")
    order = ["adamw_tuned", "adam_baseline", "grokfast_ema", "grokfast_ma", "orthogonal", "stablemax", "fixed_norm"]
    table.sort(key=lambda r: order.index(r.method) if r.method in order else len(order))
    md = method_markdown(table, "adamw_tuned")
    budget = table[0].budget
    setting = (
        f"Task: `quick` preset (add mod 97, 30% data, 1-layer d_model 64), {budget}-step budget, seeds 0-4 "
        f"(init), split_seed 0 for all; AdamW tuned on seeds 100-101: lr {tuned['lr']}, weight decay "
        f"{tuned['weight_decay']}."
    )
    (out / "table.md").write_text(setting + "\n\n" + md + "\n")
    (out / "table.json").write_text(json.dumps([dataclasses.asdict(r) for r in table], indent=1))
    method_figure(table, "Interventions on quick (add mod 97): steps to grokking").savefig(
        out / "interventions.png", dpi=130
    )
    print(setting + "\n\n" + md, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-out/interventions"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stages", default="published,tune,eval")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per point (default: cores // workers)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if "published" in stages:
        results["published"] = published(args.out, args.workers, args.threads)
    if "tune" in stages:
        results["tuned"] = tune(args.out, args.workers, args.threads)
    results_path.write_text(json.dumps(results, indent=1))
    if "eval" in stages or "table" in stages:
        if "tuned" not in results:
            print("run the tune stage first", file=sys.stderr)
            return 2
        if "eval" in stages:
            evaluate(args.out, args.workers, args.threads, results["tuned"])
        else:
            write_table(args.out, results["tuned"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
