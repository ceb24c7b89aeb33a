"""The analysis of one run directory: read its checkpoints and metrics, return every record.

This module reads; it does not write. ``groklab analyze`` writes what :func:`analyze_run` returns
into ``RUN_DIR/analysis/`` (DESIGN section 5):

- ``summary.json``: the run, key frequencies (both methods and their agreement), grokking events,
  phases, ablation drops and the success criteria of a grokking reproduction;
- ``progress.jsonl``: the progress measures of every checkpoint (key frequencies fixed from the
  final checkpoint);
- ``fourier.json``: spectra of the final checkpoint and over checkpoints;
- ``neurons.json`` and ``ablation.json``: the final checkpoint's neurons and ablations.

Key frequencies come from the neuron clusters of the final checkpoint; when there are none (a run
that never formed the algorithm) the embedding-norm list is used and ``key_frequency_source``
says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from groklab.analysis.ablation import ablation_report
from groklab.analysis.fourier import (
    basis_labels,
    cos_coefficients,
    embedding_spectrum,
    frequencies,
    logit_fourier_norms,
    unembed_spectrum,
)
from groklab.analysis.grokking import summary_record
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.progress import fourier_null_reason, progress_measures
from groklab.config import Config
from groklab.data import OPERATIONS, Dataset, make_dataset
from groklab.models import build_model, eval_mode
from groklab.runs import Run, RunError
from groklab.train import load_checkpoint, run_config

__all__ = ["AnalysisResult", "analyze_run"]


@dataclass
class AnalysisResult:
    summary: dict[str, Any]
    progress: list[dict[str, Any]]
    fourier: dict[str, Any]
    neurons: dict[str, Any]
    ablation: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _fourier_record(model: Any, ds: Dataset, keys: list[int], series: list[dict[str, Any]]) -> dict[str, Any]:
    p = ds.p
    rec: dict[str, Any] = {
        "p": p,
        "frequencies": frequencies(p),
        "basis_labels": basis_labels(p),
        "embedding_norms": embedding_spectrum(model.W_E_tokens.detach()).tolist(),
        "unembed_norms": unembed_spectrum(model.W_L.detach()).tolist(),
        "key_frequencies": keys,
        "over_checkpoints": series,  # [{"step", "embedding_norms", "unembed_norms", "cos_coefficients"}]
        "logit_norms": None,
        "logit_norms_reason": None,
        "cos_coefficients": None,
        "cos_coefficients_reason": None,
    }
    if ds.n != p * p:
        reason = f"operation {ds.op!r} leaves pairs undefined, so the logits are not a full p x p table"
        rec["logit_norms_reason"] = rec["cos_coefficients_reason"] = reason
        return rec
    with eval_mode(model):
        logits = model.forward_last(ds.tokens)
    rec["logit_norms"] = logit_fourier_norms(logits, p).tolist()  # [p, p] 2-D Fourier norms
    why = fourier_null_reason(ds.op, p, ds.n, frequencies(p))
    additive = OPERATIONS[ds.op].additive
    if why is None and additive is not None:
        rec["cos_coefficients"] = dict(
            zip(frequencies(p), cos_coefficients(logits, p, frequencies(p), additive).tolist(), strict=True)
        )
    else:
        rec["cos_coefficients_reason"] = why or f"operation {ds.op!r} is not additive"
    return rec


def _spectra(model: Any, ds: Dataset, step: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "step": step,
        "embedding_norms": embedding_spectrum(model.W_E_tokens.detach()).tolist(),
        "unembed_norms": unembed_spectrum(model.W_L.detach()).tolist(),
        "cos_coefficients": None,
    }
    additive = OPERATIONS[ds.op].additive
    if ds.n == ds.p * ds.p and additive is not None:
        with eval_mode(model):
            logits = model.forward_last(ds.tokens)
        out["cos_coefficients"] = cos_coefficients(logits, ds.p, frequencies(ds.p), additive).tolist()
    return out


def load_states(run: Run, warn: Callable[[str], None]) -> list[tuple[int, dict[str, Any]]]:
    """(step, model state) of every checkpoint that loads; a corrupt one is skipped with a warning."""
    states = []
    for step, path in run.checkpoints():
        try:
            states.append((step, load_checkpoint(path)["model"]))
        except RunError as e:
            warn(f"skipped {e}")
    return states


def analyze_run(
    run: Run,
    device: str = "cpu",
    on_checkpoint: Callable[[int, int], None] | None = None,
    n_draws: int = 10,
) -> AnalysisResult:
    """Every analysis record of ``run``; raises RunError when nothing can be analysed."""
    t0 = time.perf_counter()
    warnings: list[str] = []
    cfg: Config = run_config(run)
    status = run.status()
    if status.get("state") == "running" or run.is_locked():
        warnings.append("the run is still being written: analysing the checkpoints complete so far")
    if not run.checkpoints():
        raise RunError(f"{run.path}: no checkpoint to analyse")
    states = load_states(run, warnings.append)
    if not states:
        raise RunError(f"{run.path}: no valid checkpoint to analyse")
    ds = make_dataset(cfg.task.op, cfg.task.p)
    train, test = run.split()
    metrics = run.metrics()
    model = build_model(cfg.model, cfg.task.p).to(device)
    ds = Dataset(ds.op, ds.p, ds.pairs, ds.tokens.to(device), ds.labels.to(device))
    final_step, final_state = states[-1]
    model.load_state_dict(final_state)

    neurons = analyze_neurons(model, ds)
    keys, source = neurons.keys, "neuron clusters"
    if not keys:
        keys, source = list(neurons.embedding_key_frequencies), "embedding norms (no neuron cluster was large enough)"

    progress, series = [], []
    for i, (step, state) in enumerate(states):
        model.load_state_dict(state)
        progress.append(progress_measures(model, ds, train, test, keys, step=step).to_dict())
        series.append(_spectra(model, ds, step))
        if on_checkpoint:
            on_checkpoint(i + 1, len(states))
    model.load_state_dict(final_state)  # the loop ends on it too; stated for the reader

    fourier = _fourier_record(model, ds, keys, series)
    ablation = ablation_report(
        model, ds, test, keys, neurons.cluster_dict(), neurons.neuron_frequency or None, n_draws=n_draws, seed=cfg.seed
    ).to_dict()
    neurons_rec = neurons.to_dict()
    summary = {
        "run": run.path.name,
        "config": {
            "name": cfg.name,
            "op": cfg.task.op,
            "p": cfg.task.p,
            "train_frac": cfg.task.train_frac,
            "seed": cfg.seed,
        },
        "state": status.get("state"),
        "analysed_step": final_step,
        "n_checkpoints": len(states),
        **summary_record(metrics, progress, neurons_rec, ablation),
        "key_frequencies": keys,  # what the progress measures and ablations used
        "key_frequency_source": source,
        "key_frequencies_by_neurons": neurons.key_frequencies,
        "ablation": _ablation_summary(ablation),
        "warnings": warnings,
        "elapsed_s": round(time.perf_counter() - t0, 2),
        "device": str(device),
    }
    return AnalysisResult(summary, progress, fourier, neurons_rec, ablation, warnings)


def _ablation_summary(ablation: dict[str, Any]) -> dict[str, Any]:
    freq = ablation.get("frequency")
    neurons = ablation.get("neurons", {})
    return {
        "baseline_test_acc": ablation["baseline"]["test_acc"],
        "key_frequency_acc_drop": freq["key"]["acc_drop"] if freq else None,
        "control_acc_drop_mean": (freq["control"]["acc_drop"] or {}).get("mean") if freq else None,
        "neurons_to_break": (neurons.get("cumulative") or {}).get("n_to_below_half"),
        "reason": ablation.get("frequency_reason"),
    }
