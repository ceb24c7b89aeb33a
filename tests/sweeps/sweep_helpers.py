"""Helpers shared by the sweep tests."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

TINY = Path(__file__).with_name("tiny.yaml")
GROKLAB = Path(sys.executable).with_name("groklab")  # the console script of this environment


def groklab(*args: object, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run ``groklab ARGS`` through its console script (pipes, so no progress display)."""
    env = {**os.environ, "COLUMNS": "200", **kw.pop("env", {})}
    return subprocess.run(
        [str(GROKLAB), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, **kw
    )


def read_summary(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in lines if line.strip()]


def all_metrics(sweep_dir: Path) -> dict[str, list[dict]]:
    return {p.name: run_metrics(p) for p in sorted((sweep_dir / "runs").iterdir())}
