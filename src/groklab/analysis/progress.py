"""Progress measures of one model state (Nanda et al. 2023), for one checkpoint at a time.

Every measure is defined in DESIGN section 6 and computed with the key frequencies K held fixed
(they come from the final checkpoint). Which measures exist depends on the task:

- always: train/test loss and accuracy, weight norm, Gini of the W_E and W_L spectra (the Fourier
  basis of Z_p is defined for any operation; for non-additive ones it just is not the model's basis);
- only for an additive operation (add: s = a+b, sub: s = a-b) over the full p x p table, with a
  non-empty K: restricted loss (all pairs and test split), excluded loss (train split), trig FVE
  of MLP pre-, post-activations and logits, and the fraction of logit norm explained by
  cos(w_k(s - c)). Elsewhere they are None, and ``null_reasons[field]`` says why.

Losses are cross-entropy in float64, averaged over the pairs of the split; accuracy is the
fraction of pairs whose argmax logit is the label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from groklab.analysis.fourier import (
    cos_fraction,
    embedding_spectrum,
    gini,
    project_sum,
    trig_fve,
    unembed_spectrum,
)
from groklab.analysis.neurons import Model, eq_activations
from groklab.data import OPERATIONS, Dataset
from groklab.models import weight_norm_sq
from groklab.records import Progress

__all__ = [
    "FOURIER_FIELDS",
    "accuracy",
    "cross_entropy",
    "fourier_null_reason",
    "nll",
    "progress_measures",
    "progress_series",
    "weight_norm_sq",
]

# measures that need sum directions (additive op, full table, key frequencies)
FOURIER_FIELDS = (
    "restricted_loss",
    "restricted_loss_test",
    "excluded_loss",
    "trig_fve_pre",
    "trig_fve_post",
    "trig_fve_logits",
    "cos_fraction",
)


def cross_entropy(logits: Tensor, labels: Tensor) -> float:
    """Mean cross-entropy in float64 of ``logits [n, p]`` against ``labels [n]``."""
    return float(nll(logits, labels).mean())


def nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-example cross-entropy [n] in float64 of ``logits [n, p]`` against ``labels [n]``."""
    return F.cross_entropy(logits.to(torch.float64), labels.to(logits.device), reduction="none")


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows of ``logits [n, p]`` whose argmax equals ``labels [n]``."""
    return float((logits.argmax(-1) == labels.to(logits.device)).to(torch.float64).mean())


def fourier_null_reason(op: str, p: int, n_pairs: int, key_freqs: Sequence[int]) -> str | None:
    """Why the sum-direction measures are undefined for this task, or None when they are defined."""
    additive = OPERATIONS[op].additive
    if additive is None:
        return (
            f"operation {op!r} has no additive structure (labels are not a function of a+b or a-b), "
            "so the sum directions behind this measure are undefined"
        )
    if n_pairs != p * p:
        return f"operation {op!r} leaves {p * p - n_pairs} of the p^2 pairs undefined; the measure needs the full table"
    if not key_freqs:
        return "no key frequencies were found, so P_K is empty"
    return None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _rows(ds: Dataset, pairs: Tensor | np.ndarray | Sequence[int]) -> Tensor:
    return ds.rows(torch.as_tensor(np.asarray(pairs), dtype=torch.long))


def progress_measures(
    model: Model,
    ds: Dataset,
    train_pairs: Tensor | np.ndarray | Sequence[int],
    test_pairs: Tensor | np.ndarray | Sequence[int],
    key_freqs: Sequence[int],
    step: int | None = None,
) -> Progress:
    """Every progress measure of ``model`` on task ``ds`` with fixed key frequencies ``key_freqs``.

    ``train_pairs`` / ``test_pairs`` are pair indices a*p + b (``data.make_split``). One pass of the
    fast `=`-only path over all valid pairs gives logits and the last MLP's pre/post-activations.
    """
    p = ds.p
    keys = sorted(set(int(k) for k in key_freqs))
    pre, post, logits = eq_activations(model, ds.tokens)
    labels = ds.labels.to(logits.device)
    tr, te = _rows(ds, train_pairs).to(logits.device), _rows(ds, test_pairs).to(logits.device)
    wsq = weight_norm_sq(model)
    reasons: dict[str, str] = {}
    ginis: dict[str, float | None] = {}
    for name, spec in (
        ("gini_embed", embedding_spectrum(model.W_E_tokens.detach())),
        ("gini_unembed", unembed_spectrum(model.W_L.detach())),
    ):
        ginis[name] = _finite(gini(spec.cpu()))
        if ginis[name] is None:
            reasons[name] = "the spectrum is all zero, so its Gini is undefined"
    losses, correct = nll(logits, labels), (logits.argmax(-1) == labels).to(torch.float64)
    rec = Progress(
        step=step,
        key_frequencies=keys,
        train_loss=float(losses[tr].mean()),
        train_acc=float(correct[tr].mean()),
        test_loss=float(losses[te].mean()),
        test_acc=float(correct[te].mean()),
        weight_norm_sq=wsq,
        weight_norm=math.sqrt(wsq),
        gini_embed=ginis["gini_embed"],
        gini_unembed=ginis["gini_unembed"],
        null_reasons=reasons,
    )
    why = fourier_null_reason(ds.op, p, ds.n, keys)
    if why is not None:
        reasons.update({f: why for f in FOURIER_FIELDS})
        return rec
    additive = OPERATIONS[ds.op].additive
    assert additive is not None
    L64 = logits.to(torch.float64)
    PL = project_sum(L64, p, keys, additive)
    L_r = PL + L64.mean(0, keepdim=True)  # = restricted_logits(logits, ...)
    L_x = L64 - PL  # = excluded_logits(logits, ...)
    r_losses = nll(L_r, labels)
    rec.restricted_loss = float(r_losses.mean())
    rec.restricted_loss_test = float(r_losses[te].mean())
    rec.excluded_loss = cross_entropy(L_x[tr], labels[tr])
    for name, T in (("trig_fve_pre", pre), ("trig_fve_post", post), ("trig_fve_logits", logits)):
        value = _finite(trig_fve(T, p, keys, additive))
        setattr(rec, name, value)
        if value is None:
            reasons[name] = "the activations are constant over inputs"
    rec.cos_fraction = _finite(cos_fraction(logits, p, keys, additive))
    if rec.cos_fraction is None:
        reasons["cos_fraction"] = "the logits are constant over answers for every input"
    return rec


def progress_series(
    model: Model,
    states: Iterable[tuple[int, dict[str, Tensor]]],
    ds: Dataset,
    train_pairs: Tensor | np.ndarray | Sequence[int],
    test_pairs: Tensor | np.ndarray | Sequence[int],
    key_freqs: Sequence[int],
) -> list[Progress]:
    """``progress_measures`` for each ``(step, state_dict)`` in order, loaded into ``model`` in turn.

    The model ends holding the last state. Key frequencies stay fixed for every step.
    """
    out = []
    for step, state in states:
        model.load_state_dict(state)
        out.append(progress_measures(model, ds, train_pairs, test_pairs, key_freqs, step=step))
    return out
