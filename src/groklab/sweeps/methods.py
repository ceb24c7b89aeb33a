"""Comparing methods over paired seeds: the table and figure of the interventions benchmark.

A sweep whose points differ by a method label (the ``name`` key) and a seed gives, per method, the
steps to grokking of each seed (None: never grokked within the budget: censored). Per method the
table holds the median and the order-statistic 95% CI of those steps (:mod:`groklab.analysis.stats`),
the fraction of seeds that grokked, and the paired acceleration factor against a baseline method
(per seed baseline steps / method steps, same seed and split), with its CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from groklab.analysis.stats import SeedStats, median_ci_ranks, paired_ratios, seed_stats

__all__ = ["MethodRow", "method_figure", "method_markdown", "method_table"]


@dataclass(frozen=True)
class MethodRow:
    method: str
    seeds: list[int]
    steps: list[int | None]  # steps to grokking per seed (None: censored at the budget)
    budget: int
    stats: SeedStats  # of steps
    speedup: SeedStats | None  # paired baseline / method; None for the baseline itself
    # seeds where the method never grokked but the baseline did: each ratio is < baseline / budget,
    # so any order statistic of rank <= their number is below the largest such bound
    n_below: int = 0
    speedup_below: float | None = None


def method_table(
    rows: Sequence[dict[str, Any]], baseline: str, *, method_key: str = "name", seed_key: str = "seed",
    budget_key: str = "steps",
) -> list[MethodRow]:  # fmt: skip
    """Per method (in first-seen order), its per-seed steps to grokking and their statistics.
    ``rows``: sweep summary rows; a row's budget is its configured steps (``budget_key``)."""
    by_method: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_method.setdefault(str(r[method_key]), {})[int(r[seed_key])] = r
    if baseline not in by_method:
        raise ValueError(f"baseline method {baseline!r} is not among {sorted(by_method)}")
    base_seeds = sorted(by_method[baseline])
    out = []
    for method, per_seed in by_method.items():
        seeds = sorted(per_seed)
        if seeds != base_seeds:
            raise ValueError(f"method {method!r} has seeds {seeds}, the baseline {base_seeds}: not paired")
        steps = [_steps(per_seed[s]) for s in seeds]
        base = [_steps(by_method[baseline][s]) for s in seeds]
        budget = max(int(per_seed[s][budget_key]) for s in seeds)
        bounds = [b / budget for b, m in zip(base, steps, strict=True) if m is None and b is not None]
        out.append(
            MethodRow(
                method, seeds, steps, budget, seed_stats(steps),
                None if method == baseline else paired_ratios(base, steps), len(bounds), max(bounds, default=None),
            )
        )  # fmt: skip
    return out


def _steps(row: dict[str, Any]) -> int | None:
    if row.get("state") != "completed":
        raise ValueError(f"run {row.get('run_id')} is {row.get('state')}, not completed: the table needs every run")
    v = row.get("grokking_step")
    return None if v in (None, "") else int(v)


def _num(v: float | None, fmt: str, budget: int | None = None) -> str:
    if v is None:
        return f"> {budget}" if budget is not None else "?"
    return format(v, fmt)


def method_markdown(table: list[MethodRow], baseline: str) -> str:
    """A Markdown table: median steps [95% CI], grokked n/N, paired speed-up vs the baseline [CI]."""
    lines = [
        f"| method | steps to grok, median [CI] | grokked | speed-up vs {baseline}, median [CI] | per seed |",
        "|---|---|---|---|---|",
    ]
    for row in table:
        s = row.stats
        steps = f"{_num(s.median, '.0f', row.budget)} [{_num(s.ci_low, '.0f', row.budget)}, {_num(s.ci_high, '.0f', row.budget)}]"
        if row.speedup is None:
            speed = "1 (baseline)"
        else:
            u, below = row.speedup, f"< {row.speedup_below or 0:.2f}"
            lo_rank, hi_rank, _ = median_ci_ranks(u.n) if u.n else (1, 1, 0.0)
            lo = below if u.ci_low is None and row.n_below >= lo_rank else _num(u.ci_low, ".2f")
            med = below if u.median is None and row.n_below >= u.n // 2 + 1 else _num(u.median, ".2f")
            hi = below if u.ci_high is None and row.n_below >= hi_rank else _num(u.ci_high, ".2f")
            speed = f"{med} [{lo}, {hi}]"
            if u.n_uninformative:
                speed += f" ({u.n_uninformative} seeds: both censored)"
        per_seed = ", ".join("-" if v is None else str(v) for v in row.steps)
        grokked = f"{s.n - s.n_censored}/{s.n}"
        lines.append(f"| {row.method} | {steps} | {grokked} | {speed} | {per_seed} |")
    coverage = {round(r.stats.ci_coverage or 0, 4) for r in table}
    lines.append("")
    lines.append(
        f"CI: order-statistic interval for the median, coverage {', '.join(f'{c:.4f}' for c in sorted(coverage))} "
        "(5 seeds cannot reach 0.95: the widest interval is given with its exact coverage). "
        "'> B': censored at the budget B (never grokked); '< x': below x, bounded by runs of the method "
        "that never grokked (x = baseline steps / budget); '?': unknown (bounded only by censored runs); "
        "'-' in the per-seed list: never grokked."
    )
    return "\n".join(lines)


def method_figure(table: list[MethodRow], title: str = "") -> Figure:
    """Steps to grokking per method: each seed a dot (censored seeds: an open triangle at the
    budget), the median a bar, its CI a line."""
    fig = Figure(figsize=(7.5, 0.55 * len(table) + 1.4), layout="constrained")
    ax = fig.subplots()
    for i, row in enumerate(table):
        y = len(table) - 1 - i
        seen = [v for v in row.steps if v is not None]
        ax.scatter(seen, [y] * len(seen), s=18, color="0.35", zorder=3)
        n_cens = len(row.steps) - len(seen)
        if n_cens:
            ax.scatter(
                [row.budget] * n_cens, [y] * n_cens, s=40, marker=">", facecolors="none", edgecolors="C3", zorder=3
            )
        s = row.stats
        lo = s.ci_low if s.ci_low is not None else row.budget
        hi = s.ci_high if s.ci_high is not None else row.budget
        ax.plot([lo, hi], [y, y], color="C0", lw=2, alpha=0.6)
        if s.median is not None:
            ax.plot([s.median] * 2, [y - 0.3, y + 0.3], color="C0", lw=2.5)
    ax.set_yticks(range(len(table)), [r.method for r in reversed(table)])
    ax.set_xscale("log")
    ax.set_xlabel("steps to grokking (test acc >= 0.95, held); open triangles: never grokked (budget)")
    ax.axvline(table[0].budget, color="C3", lw=0.8, ls=":")
    ax.set_title(title or "Steps to grokking per method (median, CI, seeds)")
    return fig
