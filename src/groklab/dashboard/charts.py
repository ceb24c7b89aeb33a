"""Plotly figures of the dashboard: records in (metric records, typed analysis records from
:mod:`groklab.records`, checkpoint views), figures out. Nothing is computed here that
:mod:`groklab.analysis` computes; values are plotted as read. Colours and phase names come from
:mod:`groklab.conventions`, so these charts and the matplotlib figures agree.

Data are passed to Plotly as plain lists, so a figure's JSON holds the numbers themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from groklab.conventions import COLORS, PHASE_COLORS, basis_name, event_rule, frequency_label, phi_label
from groklab.records import (
    AblationReport,
    BasisRecord,
    CumulativeAblation,
    GrokkingEvents,
    HeadAblation,
    NeuronAblation,
    NeuronAnalysis,
    Phases,
    Progress,
)

if TYPE_CHECKING:
    from groklab.dashboard.compute import Circle

__all__ = [
    "ablation_clusters_figure",
    "ablation_cumulative_figure",
    "ablation_frequency_figure",
    "ablation_heads_figure",
    "circles_figure",
    "clusters_figure",
    "compare_figure",
    "curves_figure",
    "progress_figure",
    "events_figure",
    "spectrum_figure",
    "sweep_figure",
]

KEY, OTHER, NEUTRAL = COLORS["key"], COLORS["other"], COLORS["neutral"]
PHASE_OPACITY = 0.6  # of the phase shading over the curves


def _points(points: Iterable[tuple[Any, Any]], log_x: bool = False) -> tuple[list[int], list[float]]:
    """(steps, values) of the (step, value) pairs whose value is a finite number; step 0 is left out
    of a log axis."""
    xs, ys = [], []
    for s, v in points:
        if isinstance(s, int) and isinstance(v, int | float) and math.isfinite(v) and not (log_x and s <= 0):
            xs.append(s)
            ys.append(float(v))
    return xs, ys


def _series(records: Sequence[dict[str, Any]], key: str, log_x: bool = False) -> tuple[list[int], list[float]]:
    """(steps, values) of metric ``key`` in evaluation records (dicts of ``metrics.jsonl``)."""
    return _points(((r.get("step"), r.get(key)) for r in records), log_x)


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title=title, height=height, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.18)
    )
    return fig


def curves_figure(
    metrics: Sequence[dict[str, Any]],
    events: GrokkingEvents | None = None,
    phases: Phases | None = None,
    log_x: bool = True,
) -> go.Figure:
    """Train/test accuracy and loss against step, memorization/grokking markers, phase shading.

    Markers are line traces (named with their step); phases are shaded rectangles in
    ``conventions.PHASE_COLORS``. Shape and trace x values are steps: Plotly.js 3 and later place
    shapes on a log axis in data coordinates (annotations would still take log10, so none are used).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss (log scale)"), horizontal_spacing=0.08)
    losses: list[float] = []
    for col, (kind, yaxis) in enumerate((("acc", "accuracy"), ("loss", "cross-entropy (nats)")), start=1):
        for split in ("train", "test"):
            xs, ys = _series(metrics, f"{split}_{kind}", log_x)
            if kind == "loss":
                losses += [y for y in ys if y > 0]
            line = dict(color=COLORS[split])
            fig.add_trace(go.Scatter(x=xs, y=ys, name=f"{split} {kind}", mode="lines", line=line), row=1, col=col)
        fig.update_yaxes(title_text=yaxis, row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=2)
    _step_axis(fig, log_x)
    for name, start, end in phases.spans() if phases else []:
        start = max(start, 1) if log_x else start
        if end > start:
            fig.add_vrect(
                x0=start, x1=end, fillcolor=PHASE_COLORS[name], opacity=PHASE_OPACITY, line_width=0, layer="below"
            )
    spans = {1: (0.0, 1.0), 2: (min(losses), max(losses)) if losses else None}
    if events is not None:
        _event_marks(fig, events, spans, log_x)
    return _layout(fig, "Training curves", 380)


def _step_axis(fig: go.Figure, log_x: bool) -> None:
    fig.update_xaxes(title_text="step" + (" (log scale)" if log_x else ""), type="log" if log_x else "linear")


def _event_marks(
    fig: go.Figure, events: GrokkingEvents, spans: dict[int, tuple[float, float] | None], log_x: bool
) -> None:
    """A vertical line in each panel (``spans``: column -> y range) at the memorization and grokking steps."""
    marks = (
        ("memorization_step", events.memorization_step, "memorized", "dot"),
        ("grokking_step", events.grokking_step, "grokked", "dash"),
    )
    for key, step, label, dash in marks:
        if step is None or (log_x and step <= 0):
            continue
        for col, span in spans.items():
            if span is not None:
                fig.add_trace(
                    go.Scatter(
                        x=[step, step], y=list(span), mode="lines", line=dict(dash=dash, color="#444"),
                        name=f"{label} (step {step})", legendgroup=key, showlegend=col == 1,
                        hovertemplate=f"{label} at step {step}: {event_rule(key)}<extra></extra>",
                    ),
                    row=1, col=col,
                )  # fmt: skip


ProgressValue = Callable[[Progress], float | None]
PROGRESS_LOSSES: tuple[tuple[str, ProgressValue], ...] = (
    ("test loss", lambda r: r.test_loss),
    ("restricted loss", lambda r: r.restricted_loss),
    ("excluded loss", lambda r: r.excluded_loss),
    ("train loss", lambda r: r.train_loss),
)
PROGRESS_FRACTIONS: tuple[tuple[str, ProgressValue], ...] = (
    ("Gini W_E", lambda r: r.gini_embed),
    ("Gini W_L", lambda r: r.gini_unembed),
    ("trig FVE logits", lambda r: r.trig_fve_logits),
)


def progress_figure(progress: Sequence[Progress], log_x: bool = True) -> go.Figure:
    """The progress measures over saved steps: restricted/excluded vs test loss, Gini, trig FVE."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("losses (log scale)", "Gini and trig FVE"), horizontal_spacing=0.08
    )
    for col, measures in enumerate((PROGRESS_LOSSES, PROGRESS_FRACTIONS), start=1):
        for name, value in measures:
            xs, ys = _points(((r.step, value(r)) for r in progress), log_x)
            fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines+markers"), row=1, col=col)
    fig.update_yaxes(type="log", title_text="cross-entropy (nats)", row=1, col=1)
    fig.update_yaxes(title_text="fraction", range=[0, 1.02], row=1, col=2)
    _step_axis(fig, log_x)
    return _layout(fig, "Progress measures (key frequencies fixed from the final checkpoint)", 380)


def spectrum_figure(
    frequencies: list[int], norms: list[float], key: Sequence[int], step: int, basis: BasisRecord
) -> go.Figure:
    """Embedding spectrum at one checkpoint: norm of each frequency of ``F @ W_E`` in the task's
    ``basis`` (named on the x axis), key ones red."""
    colors = [KEY if k in key else OTHER for k in frequencies]
    fig = go.Figure(go.Bar(x=frequencies, y=norms, marker_color=colors, name="embedding spectrum"))
    fig.update_xaxes(title_text=frequency_label(basis), dtick=1 if len(frequencies) <= 30 else None)
    fig.update_yaxes(title_text="norm of cos k and sin k rows of F W_E")
    return _layout(fig, f"Embedding spectrum at step {step}", 340)


def circles_figure(circles: Mapping[int, Circle], step: int, basis: BasisRecord) -> go.Figure:
    """Each frequency's plane of the task's ``basis``: the tokens the map places at their (cos, sin)
    coordinates, labelled by token and coloured by phi(token) (``compute.circles``)."""
    ks = sorted(circles)
    fig = make_subplots(rows=1, cols=max(1, len(ks)), subplot_titles=[f"k = {k}" for k in ks])
    phi = phi_label(basis, "a").replace("a", "x")
    for i, k in enumerate(ks, start=1):
        c = circles[k]
        fig.add_trace(
            go.Scatter(
                x=[xy[0] for xy in c.xy],
                y=[xy[1] for xy in c.xy],
                text=[str(t) for t in c.tokens],
                customdata=c.phi,
                mode="markers+text" if len(c.xy) <= 40 else "markers",
                textposition="top center",
                marker=dict(color=c.phi, colorscale="Twilight", cmin=0, cmax=basis.n, size=7),
                name=f"k = {k}",
                hovertemplate=f"token %{{text}} ({phi} = %{{customdata}})<br>cos %{{x:.3g}}<br>sin %{{y:.3g}}"
                "<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="cos-k direction", row=1, col=i)
        fig.update_yaxes(
            title_text="sin-k direction" if i == 1 else None, scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i
        )
    return _layout(fig, f"Tokens in each key frequency's plane at step {step}: {basis_name(basis)}", 360)


def clusters_figure(frequencies: list[int], neurons: NeuronAnalysis, step: int) -> go.Figure:
    """Neurons per frequency cluster (score >= threshold) over the frequencies of the neurons'
    basis (named on the x axis), key frequencies in the key colour, the size a cluster needs to be
    key dashed."""
    sizes = {c.k: c.size for c in neurons.clusters}
    colors = [KEY if k in neurons.key_frequencies else OTHER for k in frequencies]
    fig = go.Figure(
        go.Bar(x=frequencies, y=[sizes.get(k, 0) for k in frequencies], marker_color=colors, name="cluster size")
    )
    need = neurons.min_cluster_size
    fig.add_hline(y=need, line_dash="dash", line_color="#444", annotation_text=f"key if >= {need:g}")
    fig.update_xaxes(title_text=frequency_label(neurons.basis), dtick=1 if len(frequencies) <= 30 else None)
    fig.update_yaxes(title_text=f"neurons with FVE >= {neurons.threshold}")
    return _layout(fig, f"Neuron clusters at step {step} ({neurons.n_clustered} of {neurons.d_mlp})", 340)


def ablation_frequency_figure(ablation: AblationReport) -> go.Figure:
    """Test accuracy on the pairs the frequency ablation scores (``freq.pairs``): baseline, key
    frequencies of the task's basis removed from W_E, random non-key controls (their mean as
    recorded, each draw a point). Needs ``ablation.frequency``."""
    freq = ablation.frequency
    if freq is None:
        raise ValueError(f"no frequency ablation: {ablation.frequency_reason}")
    ctrl = [d.test_acc for d in freq.control.draws]
    names = ["baseline", f"key {freq.key.frequencies}", f"random x {len(ctrl)}"]
    y = [freq.baseline.test_acc, freq.key.test_acc, freq.control.test_acc_mean]
    fig = go.Figure(go.Bar(x=names, y=y, marker_color=[OTHER, KEY, NEUTRAL], name="test accuracy"))
    if ctrl:
        fig.add_trace(go.Scatter(x=[names[2]] * len(ctrl), y=ctrl, mode="markers", name="control draws"))
    fig.update_xaxes(title_text=f"frequencies of {basis_name(ablation.basis)} removed; scored on {freq.pairs}")
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.05])
    return _layout(fig, "Frequency ablation (removed from the token embeddings)", 340)


def ablation_clusters_figure(neurons: NeuronAblation) -> go.Figure:
    """Per cluster: test accuracy with the cluster mean-ablated vs random groups of the same size."""
    rows = neurons.clusters
    x = [f"k={c.k} ({c.size})" for c in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=[c.ablated.test_acc for c in rows], name="cluster ablated", marker_color=KEY))
    fig.add_trace(
        go.Bar(
            x=x,
            y=[c.random.test_acc.mean for c in rows],
            error_y=dict(type="data", array=[c.random.test_acc.std for c in rows]),
            name="random group (mean ± std)",
            marker_color=OTHER,
        )
    )
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.05])
    fig.update_xaxes(title_text="frequency cluster (size)")
    return _layout(fig, "Neuron cluster ablation (mean ablation at =)", 340)


def ablation_cumulative_figure(cum: CumulativeAblation) -> go.Figure:
    """Test accuracy as neurons are ablated in order of importance, against random orders."""
    rnd = cum.random
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=rnd.n_ablated + rnd.n_ablated[::-1],
            y=rnd.test_acc_max + rnd.test_acc_min[::-1],
            fill="toself",
            fillcolor="rgba(127,127,127,0.25)",
            line=dict(width=0),
            name=f"random orders (min-max, {rnd.n_draws})",
            hoverinfo="skip",
        )
    )
    fig.add_trace(go.Scatter(x=rnd.n_ablated, y=rnd.test_acc_mean, name="random mean", line=dict(color=NEUTRAL)))
    fig.add_trace(go.Scatter(x=cum.n_ablated, y=cum.test_acc, name="by importance", line=dict(color=KEY)))
    if cum.n_to_below_half is not None:
        fig.add_vline(x=cum.n_to_below_half, line_dash="dash", annotation_text=f"< 50% at {cum.n_to_below_half}")
    fig.update_xaxes(title_text="neurons ablated")
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.05])
    return _layout(fig, "Cumulative neuron ablation", 340)


def ablation_heads_figure(heads: Sequence[HeadAblation], baseline: float) -> go.Figure:
    x = [f"L{h.layer}H{h.head}" for h in heads]
    fig = go.Figure(go.Bar(x=x, y=[h.test_acc for h in heads], name="head ablated", marker_color=OTHER))
    fig.add_hline(y=baseline, line_dash="dash", annotation_text="baseline")
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.05])
    fig.update_xaxes(title_text="attention head (mean-ablated)")
    return _layout(fig, "Head ablation", 340)


def events_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """One point per run that memorized: grokking step against memorization step (the delay is the
    height above the diagonal); runs that never grokked sit on a line at their last step."""
    mem = [r for r in rows if isinstance(r.get("memorization_step"), int)]
    fig = go.Figure()
    for grokked, name, symbol in ((True, "grokked", "circle"), (False, "not grokked (at last step)", "x")):
        pts = [r for r in mem if (r.get("grokking_step") is not None) == grokked]
        fig.add_trace(
            go.Scatter(
                x=[r["memorization_step"] for r in pts],
                y=[r["grokking_step"] if grokked else r.get("steps") for r in pts],
                text=[str(r.get("run")) for r in pts],
                mode="markers",
                marker=dict(symbol=symbol, size=10),
                name=name,
                hovertemplate="%{text}<br>memorized %{x}<br>"
                + ("grokked" if grokked else "last step")
                + " %{y}<extra></extra>",
            )
        )
    top = max([r.get("steps") or 0 for r in mem] + [1])
    fig.add_trace(
        go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dot", color="#999"), name="no delay")
    )
    fig.update_xaxes(title_text=f"memorization step ({event_rule('memorization_step')})")
    fig.update_yaxes(title_text=f"grokking step ({event_rule('grokking_step')})")
    return _layout(fig, f"Memorization vs grokking, {len(mem)} runs that memorized", 360)


def compare_figure(
    series: Mapping[str, Sequence[dict[str, Any]]],
    key: str,
    log_x: bool = True,
    groups: Mapping[str, Mapping[int, Sequence[dict[str, Any]]]] | None = None,
    members: bool = False,
) -> go.Figure:
    """One line per run of metric ``key`` against step, then per seed group (label -> seed ->
    records) its median across seeds at each step (over the seeds with a record there:
    :func:`groklab.analysis.seeds.median_curve`) with the IQR as a band; with ``members``, each
    seed of a group thin beside it. Trace names: ``LABEL median``, ``LABEL q1``/``q3``, ``LABEL seed S``."""
    from groklab.analysis.seeds import median_curve

    fig = go.Figure()
    for label, records in series.items():
        xs, ys = _series(records, key, log_x)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=label, mode="lines"))
    n_runs = len(series)
    for i, (label, by_seed) in enumerate((groups or {}).items()):
        color = _palette(n_runs + i)
        if members:
            for seed, records in sorted(by_seed.items()):
                xs, ys = _series(records, key, log_x)
                fig.add_trace(go.Scatter(x=xs, y=ys, name=f"{label} seed {seed}", mode="lines", legendgroup=label,
                                         showlegend=False, line=dict(color=color, width=0.8), opacity=0.35))  # fmt: skip
        c = median_curve(by_seed, key)  # finite values only
        keep = [j for j, s in enumerate(c.steps) if not (log_x and s <= 0)]
        xs, med, q1, q3 = [c.steps[j] for j in keep], c.median, c.q1, c.q3
        fig.add_trace(go.Scatter(x=xs, y=[q3[j] for j in keep], name=f"{label} q3", mode="lines", legendgroup=label,
                                 showlegend=False, line=dict(width=0, color=color)))  # fmt: skip
        fig.add_trace(go.Scatter(x=xs, y=[q1[j] for j in keep], name=f"{label} q1", mode="lines", legendgroup=label,
                                 fill="tonexty", line=dict(width=0, color=color), opacity=0.25, showlegend=False))  # fmt: skip
        fig.add_trace(go.Scatter(x=xs, y=[med[j] for j in keep], name=f"{label} median", mode="lines",
                                 legendgroup=label, line=dict(color=color, width=3),
                                 text=[f"{c.n[j]} seeds" for j in keep],
                                 hovertemplate="step %{x}: %{y} (median of %{text})<extra></extra>"))  # fmt: skip
    _step_axis(fig, log_x)
    fig.update_yaxes(title_text=key, type="log" if key.endswith("loss") else "linear")
    return _layout(fig, f"{key} by run", 420)


def _palette(i: int) -> str:
    """The i-th colour of Plotly's default sequence (what a run's line i gets)."""
    import plotly.colors

    seq = plotly.colors.qualitative.Plotly
    return seq[i % len(seq)]


def sweep_figure(rows: Sequence[dict[str, Any]], key: str) -> go.Figure:
    """Every finished point: grokking step against ``key``; never-grokked points on a line above."""
    done = [r for r in rows if r.get("state") == "completed" and r.get(key) is not None]
    budget = max((float(r["steps"]) for r in done if r.get("steps")), default=1.0)
    grok = [r for r in done if r.get("grokking_step") not in (None, "")]
    never = [r for r in done if r.get("grokking_step") in (None, "")]
    fig = go.Figure()
    for pts, name, y, symbol in (
        (grok, "grokked", [float(r["grokking_step"]) for r in grok], "circle"),
        (never, f"never grokked (budget {budget:g})", [budget * 1.08] * len(never), "x"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[r[key] for r in pts],
                y=y,
                mode="markers",
                marker=dict(symbol=symbol, size=9),
                name=name,
                text=[str(r.get("run_id")) for r in pts],
                hovertemplate="%{text}<br>" + key + " %{x}<br>grokking step %{y}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text=key)
    fig.update_yaxes(title_text=f"grokking step ({event_rule('grokking_step')})", rangemode="tozero")
    return _layout(fig, f"Grokking step vs {key}, every point", 380)
