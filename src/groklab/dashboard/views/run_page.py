"""Page 2: one run. Its key numbers above four tabs: training (curves, refreshing while the run
trains, and the progress measures), the model at a chosen saved step (spectrum, neuron clusters,
key-frequency circles), the ablations and the newer lenses (:mod:`.lenses`). Tabs run lazily: only the open one is computed.

Analysis values come as typed records (:mod:`groklab.records`) through :mod:`..data`."""

from __future__ import annotations

from typing import Any

import streamlit as st

from groklab.analysis.grokking import grokking_events
from groklab.conventions import PHASE_COLORS, PHASE_LABELS, PHASES, basis_name, event_rule
from groklab.dashboard import charts, compute, data
from groklab.dashboard.data import RunRef
from groklab.dashboard.views import ablations, caption, fmt, lenses, section
from groklab.records import GrokkingEvents, Phases, Summary, untrusted_warning
from groklab.runs import Run, RunError

__all__ = ["REFRESH_S", "TABS", "events_and_source", "render"]

REFRESH_S = 3.0  # seconds between refreshes of a run that is training
TABS = ("Training", "At a checkpoint", "Ablations", "Lenses")


def render(refs: list[RunRef]) -> None:
    labels = [r.label for r in refs]
    if st.session_state.get("run") not in labels:
        st.session_state["run"] = None
    label = st.selectbox("Run", labels, index=None, placeholder="Choose a run", key="run")
    if label is None:
        st.info(f"Choose one of the {len(labels)} runs above.")
        return
    st.query_params["run"] = label
    ref = next(r for r in refs if r.label == label)
    run = ref.run
    st.header(label)
    with section("config.yaml"):
        cfg = run.config
        st.caption(
            f"{ref.path} · {cfg.task.op} mod {cfg.task.p}, train fraction {cfg.task.train_frac}, "
            f"{cfg.model.arch} · seed {cfg.seed}"
        )
    summary = _summary(run, warn=True)
    if summary is not None and summary.untrusted:  # NaN/inf measures, recorded as null
        st.warning(untrusted_warning(summary.untrusted))
    training = run.status().get("state") == "running" and run.is_locked()
    auto = training and st.toggle("Refresh while training", value=True, key="auto_refresh")
    every = REFRESH_S if auto else None
    st.fragment(run_every=every)(_numbers)(run, training)

    curves_tab, checkpoint_tab, ablation_tab, lens_tab = st.tabs(TABS, key="run_tab", on_change="rerun")
    with curves_tab:
        if curves_tab.open:
            st.fragment(run_every=every)(_curves)(run)
            _progress(run, summary)
    with checkpoint_tab:
        if checkpoint_tab.open:
            with section("checkpoint"):
                _checkpoint(run, label, summary)
    with ablation_tab:
        if ablation_tab.open:
            with section("analysis/ablation.json"):
                ablations.render(run)
    with lens_tab:
        if lens_tab.open:
            with section("newer lenses"):
                lenses.render(run)


def _summary(run: Run, warn: bool = False) -> Summary | None:
    """analysis/summary.json, or None (said on the page, with ``warn``, when it cannot be read)."""
    if not run.has_analysis():
        return None
    try:
        return data.summary(run)
    except RunError as e:
        if warn:
            st.warning(str(e))
        return None


def _metrics(run: Run) -> list[dict[str, Any]] | None:
    try:
        return data.metrics(run)
    except RunError as e:
        st.error(f"metrics.jsonl: {e}")
        return None


def events_and_source(metrics: list[dict[str, Any]], summary: Summary | None) -> tuple[GrokkingEvents, str]:
    """Grokking events: the analysis summary's when it covers the metrics' last step, else computed
    from the metrics now (:func:`groklab.analysis.grokking.grokking_events`); and where they came from."""
    last = max((r.get("step", -1) for r in metrics), default=None)
    if summary is not None and summary.events.last_step == last:
        return summary.events, "analysis/summary.json"
    why = "no analysis yet" if summary is None else "the analysis is older than the metrics"
    return grokking_events(metrics), f"metrics.jsonl ({why})"


def _numbers(run: Run, training: bool) -> None:
    """Status and key numbers: re-read on every refresh (cached on the files' signatures)."""
    status = run.status()
    state, step = status.get("state"), status.get("step")
    line = f"**{state}** at step {step}" if step is not None else f"**{state}**"
    if status.get("error"):
        st.error(f"{line}: {status['error']}")
    elif state == "running" and not training:
        st.warning(f"{line}, but no process holds the run's lock: the writer has stopped (resume it to continue)")
    else:
        st.markdown(line + (" (refreshing)" if training else ""))
    metrics = _metrics(run)
    if metrics is None:
        return
    if not metrics:
        st.info("No evaluations in metrics.jsonl yet.")
        return
    summary = _summary(run)
    events, source = events_and_source(metrics, summary)
    _key_numbers(metrics, events, summary)
    st.caption(f"Grokking events from {source}.")


def _curves(run: Run) -> None:
    """Accuracy and loss curves with the events and, when the analysis is current, the phases."""
    metrics = _metrics(run)
    if not metrics:
        return
    summary = _summary(run)
    events, source = events_and_source(metrics, summary)
    log_x = st.toggle("Log step axis", value=True, key="log_x")
    phases = summary.phases if summary is not None and source.startswith("analysis") else None
    st.plotly_chart(charts.curves_figure(metrics, events, phases, log_x), key="curves_chart")
    caption(st, "dynamics_accuracy", "dynamics_loss")
    if phases is not None:
        st.caption(_phase_caption(phases), unsafe_allow_html=True)


def _progress(run: Run, summary: Summary | None) -> None:
    if summary is None:
        return
    with section("analysis/progress.jsonl"):
        progress = data.progress(run)
        if progress:
            log_x = st.session_state.get("log_x", True)
            st.plotly_chart(charts.progress_figure(progress, log_x), key="progress_chart")
            caption(st, "dynamics_progress")


def _phase_caption(phases: Phases) -> str:
    """Each phase's span, after a swatch of its shading colour (HTML, for ``st.caption``)."""
    spans = {name: (a, b) for name, a, b in phases.spans()}
    parts = []
    for name in PHASES:
        swatch = f'<span style="background:{PHASE_COLORS[name]};padding:0 0.6em;margin-right:0.3em"></span>'
        span = f"steps {spans[name][0]}–{spans[name][1]}" if name in spans else "not placed"
        parts.append(f"{swatch}{PHASE_LABELS[name]}: {span}")
    missing = [r for name, r in phases.reasons.items() if name in ("circuit_formation_end", "cleanup_end")]
    why = missing[0] if missing else None
    return "Phases, shaded: " + "; ".join(parts) + (f" ({why})" if why else "") + "."


def _key_numbers(metrics: list[dict[str, Any]], events: GrokkingEvents, summary: Summary | None) -> None:
    last = max(metrics, key=lambda r: r.get("step", -1))
    shown = (
        ("Memorization step", "memorization_step", events.memorization_step),
        ("Grokking step", "grokking_step", events.grokking_step),
        ("Delay (steps)", "delay", events.delay),
    )
    cols = st.columns(4)
    for col, (label, name, value) in zip(cols, shown, strict=False):
        col.metric(label, fmt(value), help=events.reasons.get(name) or event_rule(name))
    acc = last.get("test_acc")
    cols[3].metric("Final test accuracy", "—" if acc is None else f"{acc:.4f}", help=f"at step {last.get('step')}")
    if summary is None:
        st.columns(4)[0].metric("Key frequencies", "not analysed", help="run `groklab analyze RUN_DIR`")
        return
    _analysis_numbers(summary)
    _criteria(summary)


def _analysis_numbers(summary: Summary) -> None:
    abl, agree = summary.ablation, summary.key_frequency_agreement.identical
    drop, ctrl = abl.key_frequency_acc_drop, abl.control_acc_drop_mean
    embedding = f"embedding norms give {fmt(summary.embedding_key_frequencies)} ({'same' if agree else 'differs'})"
    cols = st.columns(4)
    cols[0].metric(
        "Key frequencies",
        fmt(summary.key_frequencies),
        help=(
            f"frequencies k of {basis_name(summary.basis)}, from neuron clusters; {embedding}"
            if summary.key_frequencies
            else f"{summary.key_frequencies_reason}; {embedding}"
        ),
    )
    cols[1].metric(
        "Key-frequency ablation drop",
        "—" if drop is None else f"{drop:.1f} pts",
        help=abl.reason or "test accuracy drop (points) when the key frequencies are removed from W_E",
    )
    cols[2].metric(
        "Random-frequency control drop",
        "—" if ctrl is None else f"{ctrl:.1f} pts",
        help="mean drop over random non-key frequencies",
    )
    cols[3].metric(
        "Neurons to break (< 50%)",
        fmt(abl.neurons_to_break),
        help="neurons ablated in order of importance until test accuracy falls below 50%",
    )
    st.caption(f"Fourier basis: {basis_name(summary.basis)}.")


def _criteria(summary: Summary) -> None:
    criteria = summary.criteria
    if not criteria:
        return
    passed = sum(c.passed for c in criteria)
    with st.expander(f"Success criteria: {passed} of {len(criteria)} pass"):
        for c in criteria:
            mark = "✅" if c.passed else "❌"
            st.markdown(f"{mark} **{c.name}**: {fmt(c.value)} ({c.comparison} {c.threshold}): {c.detail}")


def _checkpoint(run: Run, label: str, summary: Summary | None) -> None:
    steps = run.steps
    if not steps:
        st.info("No checkpoints yet.")
        return
    if len(steps) == 1:
        step = steps[0]
        st.caption(f"One checkpoint, step {step}.")
    else:
        step = st.select_slider("Checkpoint step", options=steps, value=steps[-1], key=f"ckpt_step:{label}")
    view = compute.checkpoint_view(run, step)
    neurons = view.neurons
    cols = st.columns(3)
    cols[0].metric(
        "Key frequencies at this step",
        fmt(neurons.key_frequencies) if neurons.defined else "—",
        help=neurons.reason or "frequencies of neuron clusters large enough at this checkpoint",
    )
    cols[1].metric(
        "Embedding key frequencies at this step",
        fmt(neurons.embedding_key_frequencies),
        help=neurons.embedding_reason or "frequencies whose embedding norm stands out against a shuffled-basis null",
    )
    cols[2].metric("Clustered neurons", f"{neurons.n_clustered} / {neurons.d_mlp}")
    st.caption(f"Frequencies k of {basis_name(view.basis)}.")
    if neurons.defined and not neurons.key_frequencies and neurons.key_frequencies_reason:
        st.caption(f"No key frequencies at this step: {neurons.key_frequencies_reason}")
    marked = summary.key_frequencies if summary is not None else neurons.key_frequencies
    left, right = st.columns(2)
    if view.embedding_norms is not None:
        spectrum = charts.spectrum_figure(view.frequencies, view.embedding_norms, marked, step, view.basis)
        left.plotly_chart(spectrum, key="spectrum_chart")
        caption(left, "fourier_embedding_spectrum")
    else:
        left.info(f"No embedding spectrum: {view.embedding_reason}")
    if neurons.defined:
        right.plotly_chart(charts.clusters_figure(view.frequencies, neurons, step), key="clusters_chart")
        caption(right, "neuron_cluster_sizes")
    else:
        right.info(f"No neuron clusters: {neurons.reason}")
    if view.embedding_reason is None:
        _circles(run, view, label, marked)


def _circles(run: Run, view: compute.CheckpointView, label: str, marked: list[int]) -> None:
    ks = st.multiselect(
        "Frequencies to draw as circles",
        view.frequencies,
        default=[k for k in marked if k in view.frequencies][:6],
        key=f"circle_ks:{label}",
        help="default: the run's key frequencies (from the analysis), else this checkpoint's (from its neuron clusters)",
    )
    if ks:
        circles = compute.circles(run, view, sorted(ks)[:6])
        st.plotly_chart(charts.circles_figure(circles, view.step, view.basis), key="circles_chart")
        caption(st, "embedding_circles")
