"""The newer lenses over a run: clock vs pizza and AGOP at chosen steps (part of every ``analyze``),
the LLC at chosen snapshots (opt-in: ``groklab llc RUN``) and its calibration grid
(``groklab llc-calibrate RUN``). Definitions: DESIGN section 6 and the modules :mod:`.clock`,
:mod:`.agop`, :mod:`.llc`. Records: :mod:`groklab.records.lenses`.

Steps: gradient symmetricity and distance irrelevance are measured at :data:`LENS_STEPS` of the
saved steps, evenly spaced by position (first and last included), plus the saved steps nearest the
memorization and grokking steps. The AGOP costs p backward passes over all pairs (about a minute
per step for the canonical run on one CPU thread), so it is measured at the first saved step
(initialisation: the baseline its circulant fractions are reported beside), the steps nearest
memorization and grokking, and the last.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import torch

from groklab.analysis.agop import _order_b, model_agop, reversed_order
from groklab.analysis.basis import Basis, basis_of
from groklab.analysis.clock import model_clock_pizza
from groklab.analysis.grokking import grokking_events
from groklab.analysis.llc import calibrate_llc, llc_of_model, llc_point
from groklab.config import LLCConfig
from groklab.files import atomic_write
from groklab.records import RecordError, from_json, to_json
from groklab.records.lenses import Lenses, LensPoint, LLCCalibration, LLCSeries
from groklab.runs import Run, RunError

__all__ = [
    "LENS_STEPS",
    "calibrate_run",
    "lens_steps",
    "lenses_of_run",
    "llc_of_run",
    "llc_steps",
    "read_lens_record",
    "write_lens_record",
]

LENS_STEPS = 12  # evenly spaced saved steps measured by the clock/pizza and AGOP lenses
RECORDS = {"lenses": Lenses, "llc": LLCSeries, "llc_calibration": LLCCalibration}


def _spread(steps: list[int], n: int) -> list[int]:
    if len(steps) <= n:
        return list(steps)
    return sorted({steps[round(i * (len(steps) - 1) / (n - 1))] for i in range(n)})


def _nearest(steps: list[int], target: int | None) -> list[int]:
    return [] if target is None or not steps else [min(steps, key=lambda s: abs(s - target))]


def lens_steps(run: Run, n: int = LENS_STEPS) -> tuple[list[int], list[int]]:
    """The saved steps the lenses measure and, among them, those with an AGOP (module docstring)."""
    steps = run.steps
    ev = grokking_events(run.metric_records())
    events = set(_nearest(steps, ev.memorization_step)) | set(_nearest(steps, ev.grokking_step))
    agop_at = sorted(events | {steps[0], steps[-1]}) if steps else []
    return sorted(set(_spread(steps, n)) | events), agop_at


def lenses_of_run(
    run: Run,
    device: str = "cpu",
    steps: list[int] | None = None,
    agop_steps: list[int] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    states: Mapping[int, dict[str, torch.Tensor]] | None = None,
) -> Lenses:
    """Gradient symmetricity and distance irrelevance at ``steps``, AGOP circulant fractions at
    ``agop_steps`` (defaults: :func:`lens_steps`). ``states``: model states already loaded (by
    step), used instead of reading those files again."""
    default_steps, default_agop = lens_steps(run)
    steps = steps if steps is not None else default_steps
    agop_steps = agop_steps if agop_steps is not None else default_agop
    steps = sorted(set(steps) | set(agop_steps))
    ds = run.dataset.to(device)
    basis = basis_of(ds)
    train_pairs, _ = run.split
    train_rows = ds.rows(torch.from_numpy(train_pairs)).to(device)
    model = run.build_model(device)
    points, reasons, mats = [], {}, {}
    for i, step in enumerate(steps):
        state = states[step] if states is not None and step in states else run.load_state(step, device)
        model.load_state_dict(state)
        gs, di, why = model_clock_pizza(model, ds, basis)
        fr = fr_train = why_agop = None
        if step in agop_steps:
            G, fr, fr_train, why_agop = model_agop(model, ds, basis, train_rows)
            if why_agop is None:
                mats[step] = _sqrt_in_phi_order(G, basis)
        points.append(LensPoint(step, gs, di, fr, fr_train))
        for key, reason in (("clock_pizza", why), ("agop", why_agop)):
            if reason:
                reasons[key] = reason
        if on_step:
            on_step(i + 1, len(steps))
    baseline = points[0].agop if points else None
    cfg = run.config
    attn_rate = getattr(cfg.model, "attn_rate", 1.0)
    if cfg.model.arch != "transformer":
        reasons["attn_rate"] = "the MLP model has no attention; gradients are taken at its embeddings"
    return Lenses(float(attn_rate), basis.kind, points, baseline, sorted(agop_steps), mats, reasons)


def _sqrt_in_phi_order(G: torch.Tensor, basis: Basis) -> list[list[float]]:
    """sqrt of the PSD ``G`` [2p, 2p] with a's tokens in phi order, then b's in reversed phi order."""
    p = G.shape[0] // 2
    order = torch.cat([basis.token_order, p + reversed_order(_order_b(basis))])
    vals, vecs = torch.linalg.eigh(G[order][:, order])
    root = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    return [[float(f"{v:.4g}") for v in row] for row in root.tolist()]


def llc_steps(run: Run, settings: LLCConfig) -> list[int]:
    """``settings.snapshots`` saved steps, evenly spaced by position (first and last included)."""
    return _spread(run.steps, settings.snapshots)


def llc_of_run(
    run: Run,
    settings: LLCConfig,
    steps: list[int] | None = None,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> LLCSeries:
    """The LLC at ``steps`` (default :func:`llc_steps`) with the same sampler settings at each, on
    the training split (full batch, float64), with each step's test loss for the figure."""
    steps = steps if steps is not None else llc_steps(run, settings)
    missing = sorted(set(steps) - set(run.steps))
    if missing:
        raise RunError(f"{run.path}: no saved weights at step(s) {missing}")
    x, y = _train_batch(run)
    test_loss = {r["step"]: r.get("test_loss") for r in run.metric_records()}
    model = run.build_model("cpu")
    points = []
    for i, step in enumerate(steps):
        model.load_state_dict(run.load_state(step))
        points.append(llc_point(step, llc_of_model(model, x, y, settings, seed), test_loss.get(step)))
        if on_step:
            on_step(i + 1, len(steps))
    per = sum(p.seconds for p in points) / max(len(points), 1)
    return LLCSeries(_settings(settings), "train", points, round(per, 2))


def calibrate_run(
    run: Run, settings: LLCConfig, step: int, epsilons: list[float], n_betas: list[float], seed: int = 0
) -> LLCCalibration:
    """The epsilon x n_beta grid of :func:`groklab.analysis.llc.calibrate_llc` at ``step``."""
    if step not in run.steps:
        raise RunError(f"{run.path}: no saved weights at step {step} (saved: {run.steps[0]}..{run.steps[-1]})")
    x, y = _train_batch(run)
    model = run.build_model("cpu")
    model.load_state_dict(run.load_state(step))
    cells = calibrate_llc(model, x, y, settings, epsilons, n_betas, seed)
    fixed = {k: v for k, v in _settings(settings).items() if k not in ("epsilon", "n_beta")}
    return LLCCalibration(step, fixed, cells)


def _train_batch(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    ds = run.dataset
    rows = ds.rows(torch.from_numpy(run.split[0]))
    return ds.tokens[rows], ds.labels[rows]


def _settings(s: LLCConfig) -> dict[str, float]:
    keys = ("epsilon", "n_beta", "gamma", "chains", "draws", "burnin")
    return {k: float(getattr(s, k)) for k in keys}


def write_lens_record(run: Run, name: str, record: Any) -> None:
    """``analysis/NAME.json`` (``lenses``, ``llc`` or ``llc_calibration``), atomically."""
    assert name in RECORDS, name
    atomic_write(run.analysis_dir / f"{name}.json", json.dumps(to_json(record), indent=1) + "\n")


def read_lens_record(run: Run, name: str) -> Any:
    """The typed record of ``analysis/NAME.json``, or None when it was never written; RunError when
    it cannot be read."""
    if not (run.analysis_dir / f"{name}.json").is_file():
        return None
    try:
        return from_json(RECORDS[name], run.read_record(name), name)
    except RecordError as e:
        raise RunError(f"{run.analysis_dir}: {e}") from None
