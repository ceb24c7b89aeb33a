"""The analysis of one run directory: read its checkpoints and metrics, return every record.

This module reads; it does not write. ``groklab analyze`` writes what :func:`analyze_run` returns
into ``RUN_DIR/analysis/`` (DESIGN section 5):

- ``summary.json``: the run, key frequencies (both methods and their agreement), grokking events,
  phases, ablation drops and the success criteria of a grokking reproduction;
- ``progress.jsonl``: the progress measures of every checkpoint (key frequencies fixed from the
  final checkpoint);
- ``fourier.json``: spectra of the final checkpoint and over checkpoints (the W_E and W_L spectra
  at every analysed step; the cos(w(a+b-c)) coefficients, which cost a forward pass over all
  pairs each, at ``SERIES_COEFFICIENT_STEPS`` of them, evenly spaced, null at the others);
- ``neurons.json`` and ``ablation.json``: the final checkpoint's neurons and ablations;
- ``lenses.json``: gradient symmetricity, distance irrelevance and AGOP circulant fractions at
  chosen steps (:mod:`groklab.analysis.lenses`). The LLC is opt-in (``groklab llc RUN``: it costs
  far more) and goes to ``llc.json``.

Everything is in the task's own basis (:mod:`groklab.analysis.basis`), named in the records.
Key frequencies come from the neuron clusters of the final checkpoint; when there are none (a run
that never formed the algorithm) they are empty with ``key_frequencies_reason``, and the measures
that need them are null with that reason (the embedding list is reported beside, never used
in their place).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from groklab.analysis.ablation import ablation_report
from groklab.analysis.basis import Basis, basis_of
from groklab.analysis.fourier import (
    basis_labels,
    cos_coefficients,
    embedding_spectrum,
    logit_fourier_norms,
    unembed_spectrum,
)
from groklab.analysis.grokking import final_metrics, grokking_events, joined_records, success_criteria
from groklab.analysis.lenses import lens_steps, lenses_of_run
from groklab.analysis.neurons import analyze_neurons, eq_activations
from groklab.analysis.phases import phase_boundaries
from groklab.analysis.progress import progress_measures
from groklab.data import Dataset
from groklab.models import eval_mode
from groklab.records import (
    AblationReport,
    AblationSummary,
    Analysis,
    FourierRecord,
    NeuronAnalysis,
    Progress,
    RunInfo,
    Spectra,
    Summary,
)
from groklab.runs import Run, RunError

__all__ = ["SERIES_COEFFICIENT_STEPS", "analyze_run", "fourier_record"]

SERIES_COEFFICIENT_STEPS = 64  # steps of the spectra series that get cos(w(s - c)) coefficients


def fourier_record(model: Any, ds: Dataset, keys: list[int], series: list[Spectra]) -> FourierRecord:
    """The spectra of ``model`` (one checkpoint) in the task's basis with ``keys`` and the spectra
    over checkpoints ``series`` as given; a measure the basis cannot define is None with the reason."""
    basis = basis_of(ds)
    logits = _logits(model, ds, basis) if basis.pair_reason is None else None
    one = _spectra(model, ds, -1, basis, logits=logits)
    rec = FourierRecord(
        p=ds.p, basis=basis.record(), frequencies=basis.frequencies, basis_labels=basis_labels(basis.n),
        embedding_norms=one.embedding_norms, unembed_norms=one.unembed_norms, key_frequencies=keys,
        over_checkpoints=series,
    )  # fmt: skip
    if basis.token_reason is not None:
        rec.reasons["embedding_norms"] = rec.reasons["logit_norms"] = basis.token_reason
    if basis.pair_reason is not None:
        rec.reasons["unembed_norms"] = rec.cos_coefficients_reason = basis.pair_reason
    if basis.table_reason is not None:
        rec.logit_norms_reason = basis.table_reason
    else:
        assert logits is not None  # a table needs the structure map
        rec.logit_norms = logit_fourier_norms(logits, basis).tolist()  # [n, n]
    if one.cos_coefficients is not None:
        rec.cos_coefficients = dict(zip(basis.frequencies, one.cos_coefficients, strict=True))
    return rec


def _logits(model: Any, ds: Dataset, basis: Basis) -> Any:
    with eval_mode(model):
        return model.forward_last(ds.tokens[basis.rows.to(ds.tokens.device)])


def _coefficient_steps(steps: list[int], n: int) -> set[int]:
    """At most ``n`` of ``steps`` (ascending), evenly spaced by position, the first and last included."""
    if len(steps) <= n:
        return set(steps)
    return {steps[round(i * (len(steps) - 1) / (n - 1))] for i in range(n)}


def _spectra(
    model: Any, ds: Dataset, step: int, basis: Basis | None = None, coefficients: bool = True, logits: Any = None
) -> Spectra:
    """Embedding and unembedding spectra and (with ``coefficients``) the cos(w(s - c)) coefficients of
    every frequency, in the task's basis (None where the basis cannot define them). ``logits``: the
    model's logits over the analysed pairs, when the caller has them."""
    basis = basis if basis is not None else basis_of(ds)
    out = Spectra(step, None, None, None)
    if basis.token_reason is None:
        out.embedding_norms = embedding_spectrum(model.W_E_tokens.detach(), basis).tolist()
    if basis.pair_reason is None:
        out.unembed_norms = unembed_spectrum(model.W_L.detach(), basis).tolist()
        if coefficients:
            logits = logits if logits is not None else _logits(model, ds, basis)
            out.cos_coefficients = cos_coefficients(logits, basis, basis.frequencies).tolist()
    return out


def analyze_run(
    run: Run,
    device: str = "cpu",
    on_checkpoint: Callable[[int, int], None] | None = None,
    n_draws: int = 10,
) -> Analysis:
    """Every analysis record of ``run``; raises RunError when nothing can be analysed."""
    t0 = time.perf_counter()
    warnings: list[str] = []
    if run.status().get("state") == "running" or run.is_locked():
        warnings.append("the run is still being written: analysing the checkpoints complete so far")
    if not run.steps:
        raise RunError(f"{run.path}: no checkpoint or snapshot to analyse")
    states = list(run.states(warn=warnings.append))
    if not states:
        raise RunError(f"{run.path}: no valid checkpoint or snapshot to analyse")
    final_step, final_state = states[-1]
    model = run.build_model(device)
    model.load_state_dict(final_state)
    ds = run.dataset.to(device)
    train, test = run.split

    neurons = analyze_neurons(model, ds)
    keys, basis = neurons.key_frequencies, basis_of(ds)

    progress, series = [], []
    with_coefficients = _coefficient_steps([step for step, _ in states], SERIES_COEFFICIENT_STEPS)
    for i, (step, state) in enumerate(states):
        model.load_state_dict(state)
        acts = eq_activations(model, ds.tokens)  # one forward pass serves both
        progress.append(progress_measures(model, ds, train, test, keys, step=step, activations=acts))
        logits = acts[2][basis.rows.to(acts[2].device)]
        series.append(_spectra(model, ds, step, basis, coefficients=step in with_coefficients, logits=logits))
        if on_checkpoint:
            on_checkpoint(i + 1, len(states))
    model.load_state_dict(final_state)  # the loop ends on it too; stated for the reader

    fourier = fourier_record(model, ds, keys, series)
    cfg = run.config
    ablation = ablation_report(
        model, ds, test, keys, neurons.cluster_dict(), neurons.neuron_frequency or None, n_draws=n_draws,
        seed=cfg.seed, keys_reason=neurons.key_frequencies_reason,
    )  # fmt: skip
    summary = _summary(run, final_step, len(progress), progress, neurons, ablation)
    analysed = [step for step, _ in states]
    lens_at, agop_at = lens_steps(run)
    lenses = lenses_of_run(
        run, str(device), [s for s in lens_at if s in analysed], [s for s in agop_at if s in analysed],
        states=dict(states),
    )  # fmt: skip
    summary.warnings, summary.device = warnings, str(device)
    summary.elapsed_s = round(time.perf_counter() - t0, 2)
    return Analysis(summary, progress, fourier, neurons, ablation, lenses)


def _summary(
    run: Run, final_step: int, n_checkpoints: int, progress: list[Progress], neurons: NeuronAnalysis,
    ablation: AblationReport,
) -> Summary:  # fmt: skip
    cfg, metrics = run.config, run.metric_records()
    events = grokking_events(metrics)
    return Summary(
        run=run.path.name,
        config=RunInfo(cfg.name, cfg.task.op, cfg.task.p, cfg.task.train_frac, cfg.seed),
        basis=neurons.basis,
        state=run.status().get("state"),
        analysed_step=final_step,
        n_checkpoints=n_checkpoints,
        events=events,
        phases=phase_boundaries(joined_records(metrics, progress), events),
        key_frequencies=neurons.key_frequencies,
        key_frequency_counts=neurons.key_frequency_counts,
        key_frequencies_reason=neurons.key_frequencies_reason,
        embedding_key_frequencies=neurons.embedding_key_frequencies,
        key_frequency_agreement=neurons.agreement,
        final=final_metrics(metrics),
        criteria=(criteria := success_criteria(metrics, progress, ablation)),
        all_passed=all(c.passed for c in criteria),
        ablation=_ablation_summary(ablation),
    )


def _ablation_summary(ablation: AblationReport) -> AblationSummary:
    freq, cumulative = ablation.frequency, ablation.neurons.cumulative
    return AblationSummary(
        baseline_test_acc=ablation.baseline.test_acc,
        key_frequency_acc_drop=freq.key.acc_drop if freq else None,
        control_acc_drop_mean=freq.control.acc_drop.mean if freq and freq.control.acc_drop else None,
        neurons_to_break=cumulative.n_to_below_half,
        reason=ablation.frequency_reason,
    )
