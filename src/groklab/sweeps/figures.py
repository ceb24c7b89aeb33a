"""Phase diagrams: grokking step against each varied key (records in, matplotlib Figures out).

For an axis key, points that share every other axis key form one line; replicates (seeds) of a
point are summarised by :func:`groklab.analysis.stats.seed_stats`: the median grokking step with
a bar over the order-statistic 95% CI of the median (its exact coverage in the title; with 5 or
fewer seeds the widest interval, min to max, and a coverage below 95%). A run that never grokked
is censored ("later than its last step") and sorts above every observed step: when censoring
makes the median unknown (at least half the seeds never grokked), the point is drawn as an ``X``
on the dashed "never grokked" line above the step budget, not as a number; a CI bound that
censoring makes unknown runs the bar up to that line. Single seeds are dots, those that never
grokked small ``x`` marks on the line. Only finished runs (state ``completed``) enter; others are
not yet known. When both ``optim.lr`` and
``optim.weight_decay`` vary, one more diagram puts their product (the effective weight decay)
on the x axis.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from matplotlib.figure import Figure

from groklab.analysis.stats import seed_stats
from groklab.conventions import event_rule
from groklab.sweeps.spec import axis_keys

__all__ = ["EFFECTIVE_WD", "clock_pizza_plane", "lens_figures", "phase_diagram", "phase_diagrams"]

EFFECTIVE_WD = "optim.lr*optim.weight_decay"
Replicates = dict[Any, list[tuple[float | None, float]]]  # x -> [(grokking step or None, last step)]


def phase_diagrams(rows: list[dict[str, Any]], varied: list[str], title: str = "") -> dict[str, Figure]:
    """``{file stem: Figure}``, one per axis key (plus the effective weight decay when it applies)."""
    axes = axis_keys(varied)
    figs = {f"grokking_step_vs_{_stem(k)}": phase_diagram(rows, k, [a for a in axes if a != k], title) for k in axes}
    if "optim.lr" in varied and "optim.weight_decay" in varied:
        derived = [{**r, EFFECTIVE_WD: _product(r)} for r in rows]
        figs["grokking_step_vs_effective_weight_decay"] = phase_diagram(derived, EFFECTIVE_WD, [], title)
    return figs


def phase_diagram(rows: list[dict[str, Any]], key: str, group_keys: list[str], title: str = "") -> Figure:
    """Grokking step against ``key``; one line per combination of ``group_keys``."""
    done = [r for r in rows if r.get("state") == "completed" and r.get(key) is not None]
    budget = max((int(r["steps"]) for r in done if r.get("steps")), default=1)
    ceiling = budget * 1.08
    xs_all = sorted({_hashable(r[key]) for r in done}, key=_sort_key)
    numeric = bool(xs_all) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs_all)
    position = (lambda x: x) if numeric else {x: i for i, x in enumerate(xs_all)}.__getitem__
    groups = _grokking_steps(done, key, group_keys)

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot()
    never_drawn, coverages = False, set()
    for i, (g, by_x) in enumerate(sorted(groups.items(), key=lambda kv: tuple(map(_sort_key, kv[0])))):
        label = ", ".join(f"{_short(k)}={v}" for k, v in zip(group_keys, g, strict=True)) or None
        on_ceiling, covered = _draw_group(ax, by_x, position, ceiling, f"C{i % 10}", label)
        never_drawn |= on_ceiling
        coverages |= covered
    if never_drawn:
        ax.axhline(ceiling, ls="--", color="0.5", lw=0.8)
        ax.text(0.99, ceiling, f"never grokked (budget {budget} steps) ", transform=ax.get_yaxis_transform(),
                ha="right", va="bottom", fontsize=8, color="0.35")  # fmt: skip
    if numeric and xs_all and all(x > 0 for x in xs_all) and max(xs_all) / min(xs_all) >= 8:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(xs_all)), [str(x) for x in xs_all])
    _label_axes(ax, key, title, _replicates(done, key, group_keys), ceiling, coverages)
    if not done:
        ax.text(0.5, 0.5, "no finished points yet", transform=ax.transAxes, ha="center", color="0.4")
    if any(k is not None for k in ax.get_legend_handles_labels()[1]) and group_keys:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _grokking_steps(done: list[dict[str, Any]], key: str, group_keys: list[str]) -> dict[tuple[Any, ...], Replicates]:
    """{group values: {x: [(grokking step or None when it never grokked, last step)]}} over the finished rows."""
    groups: dict[tuple[Any, ...], Replicates] = defaultdict(lambda: defaultdict(list))
    for r in done:
        g = tuple(_hashable(r.get(k)) for k in group_keys)
        grok, last = r.get("grokking_step"), float(r.get("steps") or 0)
        groups[g][_hashable(r[key])].append((None if grok is None or grok == "" else float(grok), last))
    return groups


def _draw_group(
    ax: Any, by_x: Replicates, position: Any, ceiling: float, color: str, label: str | None
) -> tuple[bool, set[float]]:
    """Seeds as dots, the median with its CI as a bar, a line through the known medians; runs that
    never grokked, and a median censoring makes unknown, on the ceiling. Returns whether anything
    was drawn on the ceiling, and the CIs' coverages."""
    line_x, line_y, on_ceiling, coverages = [], [], False, set()
    for x in sorted(by_x, key=_sort_key):
        px = position(x)
        steps = [v for v, _ in by_x[x]]
        st = seed_stats(steps, bounds=[last for _, last in by_x[x]])
        finite = [v for v in steps if v is not None]
        ax.scatter([px] * len(finite), finite, s=10, color=color, alpha=0.35, zorder=2)
        if st.n_censored:
            ax.scatter([px], [ceiling], marker="x", s=18, color=color, alpha=0.35, zorder=2)
            on_ceiling = True
        if st.median is None:
            ax.scatter([px], [ceiling], marker="X", s=70, color=color, zorder=3, gid=f"censored median {x}")
            on_ceiling = True
            continue
        if st.ci_coverage is not None:
            coverages.add(round(st.ci_coverage, 3))
        lo = st.ci_low if st.ci_low is not None else st.median
        hi = st.ci_high if st.ci_high is not None else ceiling
        ax.errorbar([px], [st.median], yerr=[[st.median - lo], [hi - st.median]], fmt="o", color=color, capsize=3,
                    zorder=3, gid=f"median {x}")  # fmt: skip
        line_x.append(px)
        line_y.append(st.median)
    ax.plot(line_x, line_y, "-", color=color, alpha=0.7, label=label)
    return on_ceiling, coverages


def _label_axes(ax: Any, key: str, title: str, n_rep: int, ceiling: float, coverages: set[float]) -> None:
    ax.set_ylim(0, ceiling * 1.08)
    ax.set_xlabel("lr x weight_decay (effective weight decay)" if key == EFFECTIVE_WD else key)
    ax.set_ylabel(f"grokking step ({event_rule('grokking_step')})")
    spread = ""
    if n_rep > 1:
        cov = "/".join(f"{c:.2f}" for c in sorted(coverages)) or "n/a"
        spread = f"\n(median and order-statistic CI of the median, coverage {cov}, over {n_rep} seeds)"
    ax.set_title(f"{title + ': ' if title else ''}grokking step vs {_short(key)}{spread}", fontsize=10)
    ax.grid(alpha=0.3)


def _replicates(rows: list[dict[str, Any]], key: str, group_keys: list[str]) -> int:
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for r in rows:
        counts[(_hashable(r[key]), *(_hashable(r.get(k)) for k in group_keys))] += 1
    return max(counts.values(), default=0)


def _product(row: dict[str, Any]) -> float | None:
    lr, wd = row.get("optim.lr"), row.get("optim.weight_decay")
    return float(lr) * float(wd) if lr is not None and wd is not None else None


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))


def _short(key: str) -> str:
    return "lr*wd" if key == EFFECTIVE_WD else key.rsplit(".", 1)[-1]


def _stem(key: str) -> str:
    return key.replace(".", "_").replace("*", "_x_")


# ---------------------------------------------------------------- clock vs pizza plane

# Zhong et al. 2023 (result/1l_fixedwidth.csv, 1-layer runs): medians of (gradient symmetricity,
# distance irrelevance); their model reads [a, b] without `=`
ZHONG_ANCHORS = {"alpha < 0.6": (0.99, 0.38), "alpha >= 0.8": (0.54, 0.80), "their Model A": (0.994, 0.172)}


def clock_pizza_plane(points: list[tuple[float, float, float]], title: str = "") -> Figure:
    """Runs in the (gradient symmetricity, distance irrelevance) plane, coloured by attention rate:
    ``points`` are (attn_rate, GS, DI) of each run's last analysed step; Zhong et al.'s medians as
    black markers. Pizza: GS ~ 1, DI low; clock: GS lower, DI ~ 1."""
    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.subplots()
    if points:
        rate, gs, di = zip(*points, strict=True)
        sc = ax.scatter(gs, di, c=rate, cmap="viridis", vmin=0, vmax=1, s=40, edgecolors="k", linewidths=0.4)
        fig.colorbar(sc, ax=ax, label="attention rate alpha (model.attn_rate)")
    for (label, (x, y)), marker in zip(ZHONG_ANCHORS.items(), ("P", "X", "*"), strict=True):
        ax.scatter([x], [y], marker=marker, s=90, color="k", label=f"Zhong et al.: {label}")
    ax.set_xlabel("gradient symmetricity")
    ax.set_ylabel("distance irrelevance")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"{title}: clock vs pizza" if title else "clock vs pizza", fontsize=10)
    return fig


def lens_points(sweep_dir: Any, rows: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """(attn_rate, GS, DI) of each analysed run of a sweep (last lens point with both measures)."""
    from pathlib import Path

    from groklab.analysis.lenses import read_lens_record
    from groklab.runs import Run, RunError

    out = []
    for row in rows:
        path = Path(sweep_dir) / "runs" / str(row.get("run_id"))
        try:
            lenses = read_lens_record(Run.open(path), "lenses")
        except (RunError, OSError):
            continue
        done = [q for q in (lenses.points if lenses else []) if q.gradient_symmetricity is not None]
        if lenses is not None and done and done[-1].distance_irrelevance is not None:
            out.append((lenses.attn_rate, float(done[-1].gradient_symmetricity), float(done[-1].distance_irrelevance)))
    return out


def lens_figures(sweep_dir: Any, rows: list[dict[str, Any]], varied: list[str], title: str = "") -> dict[str, Figure]:
    """The clock vs pizza plane when the sweep varies ``model.attn_rate`` and its runs are analysed."""
    if "model.attn_rate" not in varied:
        return {}
    points = lens_points(sweep_dir, rows)
    return {"clock_pizza_plane": clock_pizza_plane(points, title)} if points else {}
