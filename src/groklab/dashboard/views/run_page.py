"""Page 2: one run. Its key numbers above three tabs: training (curves, refreshing while the run
trains, and the progress measures), the model at a chosen checkpoint (spectrum, neuron clusters,
key-frequency circles) and the ablations. Tabs run lazily: only the open one is computed."""

from __future__ import annotations

from typing import Any

import streamlit as st

from groklab.analysis.grokking import grokking_events
from groklab.dashboard import charts, compute, data
from groklab.dashboard.data import RunRef
from groklab.dashboard.views import ablations, caption, fmt, section
from groklab.runs import Run, RunError

__all__ = ["REFRESH_S", "TABS", "events_and_source", "render"]

REFRESH_S = 3.0  # seconds between refreshes of a run that is training
TABS = ("Training", "At a checkpoint", "Ablations")


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
        cfg = run.config_dict()
        task, model = cfg.get("task") or {}, cfg.get("model") or {}
        st.caption(
            f"{ref.path} · {task.get('op')} mod {task.get('p')}, train fraction {task.get('train_frac')}, "
            f"{model.get('arch')} · seed {cfg.get('seed')}"
        )
    summary = _summary(run, warn=True)
    training = run.status().get("state") == "running" and run.is_locked()
    auto = training and st.toggle("Refresh while training", value=True, key="auto_refresh")
    every = REFRESH_S if auto else None
    st.fragment(run_every=every)(_numbers)(run, training)

    curves_tab, checkpoint_tab, ablation_tab = st.tabs(TABS, key="run_tab", on_change="rerun")
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


def _summary(run: Run, warn: bool = False) -> dict[str, Any] | None:
    """analysis/summary.json, or None (said on the page, with ``warn``, when it cannot be read)."""
    if not run.has_analysis():
        return None
    try:
        summary = data.analysis(run, "summary")
    except RunError as e:
        if warn:
            st.warning(str(e))
        return None
    return summary if isinstance(summary, dict) else None


def _metrics(run: Run) -> list[dict[str, Any]] | None:
    try:
        return data.metrics(run)
    except RunError as e:
        st.error(f"metrics.jsonl: {e}")
        return None


def events_and_source(metrics: list[dict[str, Any]], summary: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """Grokking events: the analysis summary's when it covers the metrics' last step, else computed
    from the metrics now (:func:`groklab.analysis.grokking.grokking_events`); and where they came from."""
    last = max((r.get("step", -1) for r in metrics), default=None)
    ev = (summary or {}).get("events")
    if isinstance(ev, dict) and ev.get("last_step") == last:
        return ev, "analysis/summary.json"
    why = "no analysis yet" if summary is None else "the analysis is older than the metrics"
    return grokking_events(metrics).to_dict(), f"metrics.jsonl ({why})"


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
    phases = (summary or {}).get("phases") if source.startswith("analysis") else None
    st.plotly_chart(charts.curves_figure(metrics, events, phases, log_x), key="curves_chart")
    caption(st, "dynamics_accuracy", "dynamics_loss")
    if phases:
        st.caption(_phase_caption(phases))


def _progress(run: Run, summary: dict[str, Any] | None) -> None:
    if summary is None:
        return
    with section("analysis/progress.jsonl"):
        progress = data.analysis(run, "progress")
        if progress:
            log_x = st.session_state.get("log_x", True)
            st.plotly_chart(charts.progress_figure(progress, log_x), key="progress_chart")
            caption(st, "dynamics_progress")


def _phase_caption(phases: dict[str, Any]) -> str:
    names = {"memorization": "orange", "circuit_formation": "green", "cleanup": "blue"}
    bounds = [phases.get(k) for k in ("first_step", "memorization_end", "cleanup_start", "cleanup_end")]
    parts = []
    for (name, colour), a, b in zip(names.items(), bounds, bounds[1:], strict=False):
        span = f"steps {a}–{b}" if a is not None and b is not None else "not placed"
        parts.append(f"{name.replace('_', ' ')} ({colour}): {span}")
    reasons = phases.get("reasons") or {}
    why = f" ({reasons['cleanup_start']})" if reasons.get("cleanup_start") else ""
    return "Phases, shaded: " + "; ".join(parts) + why + "."


def _key_numbers(metrics: list[dict[str, Any]], events: dict[str, Any], summary: dict[str, Any] | None) -> None:
    reasons = events.get("reasons") or {}
    last = max(metrics, key=lambda r: r.get("step", -1))
    cols = st.columns(4)
    cols[0].metric("Memorization step", fmt(events.get("memorization_step")), help=reasons.get("memorization_step"))
    cols[1].metric("Grokking step", fmt(events.get("grokking_step")), help=reasons.get("grokking_step"))
    cols[2].metric("Delay (steps)", fmt(events.get("delay")), help=reasons.get("delay"))
    acc = last.get("test_acc")
    cols[3].metric("Final test accuracy", "—" if acc is None else f"{acc:.4f}", help=f"at step {last.get('step')}")
    cols = st.columns(4)
    if summary is None:
        cols[0].metric("Key frequencies", "not analysed", help="run `groklab analyze RUN_DIR`")
        return
    abl = summary.get("ablation") or {}
    agree = (summary.get("key_frequency_agreement") or {}).get("identical")
    cols[0].metric(
        "Key frequencies",
        fmt(summary.get("key_frequencies")),
        help=f"from {summary.get('key_frequency_source')}; embedding norms give "
        f"{fmt(summary.get('embedding_key_frequencies'))} ({'same' if agree else 'differs'})",
    )
    drop, ctrl = abl.get("key_frequency_acc_drop"), abl.get("control_acc_drop_mean")
    cols[1].metric(
        "Key-frequency ablation drop",
        "—" if drop is None else f"{drop:.1f} pts",
        help=abl.get("reason") or "test accuracy drop (points) when the key frequencies are removed from W_E",
    )
    cols[2].metric(
        "Random-frequency control drop",
        "—" if ctrl is None else f"{ctrl:.1f} pts",
        help="mean drop over random non-key frequencies",
    )
    cols[3].metric(
        "Neurons to break (< 50%)",
        fmt(abl.get("neurons_to_break")),
        help="neurons ablated in order of importance until test accuracy falls below 50%",
    )
    criteria = summary.get("criteria") or []
    if criteria:
        passed = sum(bool(c.get("passed")) for c in criteria)
        with st.expander(f"Success criteria: {passed} of {len(criteria)} pass"):
            for c in criteria:
                mark = "✅" if c.get("passed") else "❌"
                st.markdown(
                    f"{mark} **{c.get('name')}**: {fmt(c.get('value'))} ({c.get('comparison')} "
                    f"{c.get('threshold')}): {c.get('detail')}"
                )


def _checkpoint(run: Run, label: str, summary: dict[str, Any] | None) -> None:
    steps = [s for s, _ in run.checkpoints()]
    if not steps:
        st.info("No checkpoints yet.")
        return
    if len(steps) == 1:
        step = steps[0]
        st.caption(f"One checkpoint, step {step}.")
    else:
        step = st.select_slider("Checkpoint step", options=steps, value=steps[-1], key=f"ckpt_step:{label}")
    view = compute.checkpoint_view(run, step)
    key_ks = list((summary or {}).get("key_frequencies") or [])
    neurons = view.neurons
    cols = st.columns(3)
    cols[0].metric(
        "Key frequencies at this step",
        fmt([k["k"] for k in neurons.get("key_frequencies") or []]) if neurons.get("defined") else "—",
        help=neurons.get("reason") or "frequencies of neuron clusters large enough at this checkpoint",
    )
    cols[1].metric("Embedding key frequencies at this step", fmt(view.embedding_key_frequencies))
    cols[2].metric("Clustered neurons", f"{neurons.get('n_clustered', 0)} / {neurons.get('d_mlp')}")
    if neurons.get("note"):
        st.caption(neurons["note"])
    left, right = st.columns(2)
    marked = key_ks or view.embedding_key_frequencies
    left.plotly_chart(
        charts.spectrum_figure(view.frequencies, view.embedding_norms, marked, step), key="spectrum_chart"
    )
    caption(left, "fourier_embedding_spectrum")
    if neurons.get("defined"):
        right.plotly_chart(charts.clusters_figure(view.frequencies, neurons, step), key="clusters_chart")
        caption(right, "neuron_cluster_sizes")
    else:
        right.info(f"No neuron clusters: {neurons.get('reason')}")
    default = [k for k in (key_ks or view.embedding_key_frequencies) if k in view.frequencies][:6]
    ks = st.multiselect(
        "Frequencies to draw as circles",
        view.frequencies,
        default=default,
        key=f"circle_ks:{label}",
        help="default: the run's key frequencies (from the analysis), else this checkpoint's embedding key frequencies",
    )
    if ks:
        st.plotly_chart(charts.circles_figure(compute.circles(view, sorted(ks)[:6]), step), key="circles_chart")
        caption(st, "embedding_circles")
