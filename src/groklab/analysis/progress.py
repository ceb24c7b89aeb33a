"""Progress measures of one model state (Nanda et al. 2023), for one checkpoint at a time.

Every measure is defined in DESIGN section 6 and computed with the key frequencies K held fixed
(they come from the final checkpoint). Which measures exist depends on the task:

- always: train/test loss and accuracy (over every pair of the split) and the weight norm;
- with a structure map (:mod:`.basis`; one-to-one for the Gini of W_E): Gini of the W_E and W_L
  spectra in the task's basis;
- with a structure map and a non-empty K: restricted loss (over the analysed pairs, and their test
  part), excluded loss (analysed training pairs), trig FVE of the logits and MLP post-activations
  (sum directions) and of the pre-activations (single-variable directions, see ``trig_fve``), and
  the fraction of logit norm explained by cos(w_k(s - phi_c(c))).
Elsewhere a measure is None, and ``null_reasons[field]`` says why.

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

from groklab.analysis.basis import Basis, basis_of
from groklab.analysis.fourier import (
    cos_fraction,
    embedding_spectrum,
    gini,
    project_sum,
    trig_fve,
    unembed_spectrum,
)
from groklab.analysis.neurons import Model, eq_activations
from groklab.data import Dataset
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

# measures that need sum directions (a structure map and key frequencies)
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


def fourier_null_reason(basis: Basis, key_freqs: Sequence[int]) -> str | None:
    """Why the sum-direction measures are undefined for this task, or None when they are defined."""
    if basis.pair_reason is not None:
        return basis.pair_reason
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
    activations: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Progress:
    """Every progress measure of ``model`` on task ``ds`` with fixed key frequencies ``key_freqs``.

    ``train_pairs`` / ``test_pairs`` are pair indices a*p + b (``data.make_split``). One pass of the
    fast `=`-only path over all valid pairs gives logits and the last MLP's pre/post-activations
    (``activations``: that pass's ``eq_activations(model, ds.tokens)``, when the caller has it).
    """
    basis = basis_of(ds)
    keys = sorted(set(int(k) for k in key_freqs))
    pre, post, logits = activations if activations is not None else eq_activations(model, ds.tokens)
    labels = ds.labels.to(logits.device)
    tr, te = _rows(ds, train_pairs).to(logits.device), _rows(ds, test_pairs).to(logits.device)
    wsq = weight_norm_sq(model)
    losses, correct = nll(logits, labels), (logits.argmax(-1) == labels).to(torch.float64)
    rec = Progress(
        step=step, key_frequencies=keys,
        train_loss=float(losses[tr].mean()), train_acc=float(correct[tr].mean()),
        test_loss=float(losses[te].mean()), test_acc=float(correct[te].mean()),
        weight_norm_sq=wsq, weight_norm=math.sqrt(wsq), gini_embed=None, gini_unembed=None,
    )  # fmt: skip
    _ginis(rec, model, basis)
    why = fourier_null_reason(basis, keys)
    if why is not None:
        rec.null_reasons.update({f: why for f in FOURIER_FIELDS})
        return rec
    rows = basis.rows.to(logits.device)
    in_train = torch.zeros(ds.n, dtype=torch.bool, device=logits.device)
    in_train[tr] = True
    _fourier_measures(rec, basis, keys, pre[rows], post[rows], logits[rows], labels[rows], in_train[rows])
    return rec


def _ginis(rec: Progress, model: Model, basis: Basis) -> None:
    spectra = {"gini_embed": (basis.token_reason, lambda: embedding_spectrum(model.W_E_tokens.detach(), basis))}
    spectra["gini_unembed"] = (basis.pair_reason, lambda: unembed_spectrum(model.W_L.detach(), basis))
    for name, (why, spectrum) in spectra.items():
        value = None if why is not None else _finite(gini(spectrum().cpu()))
        setattr(rec, name, value)
        if value is None:
            rec.null_reasons[name] = why or "the spectrum is all zero, so its Gini is undefined"


def _fourier_measures(
    rec: Progress, basis: Basis, keys: list[int], pre: Tensor, post: Tensor, logits: Tensor, labels: Tensor,
    in_train: Tensor,
) -> None:  # fmt: skip
    """Restricted and excluded loss, trig FVE and cos fraction over the analysed pairs."""
    L64 = logits.to(torch.float64)
    PL = project_sum(L64, basis, keys)
    L_r = PL + L64.mean(0, keepdim=True)  # = restricted_logits(logits, ...)
    L_x = L64 - PL  # = excluded_logits(logits, ...)
    r_losses = nll(L_r, labels)
    rec.restricted_loss = float(r_losses.mean())
    rec.restricted_loss_test = float(r_losses[~in_train].mean()) if (~in_train).any() else None
    rec.excluded_loss = cross_entropy(L_x[in_train], labels[in_train]) if in_train.any() else None
    for name, T, single in (
        ("trig_fve_pre", pre, True),
        ("trig_fve_post", post, False),
        ("trig_fve_logits", logits, False),
    ):
        value = _finite(trig_fve(T, basis, keys, single=single))
        setattr(rec, name, value)
        if value is None:
            rec.null_reasons[name] = "the activations are constant over inputs"
    rec.cos_fraction = _finite(cos_fraction(logits, basis, keys))
    if rec.cos_fraction is None:
        rec.null_reasons["cos_fraction"] = "the logits are constant over answers for every input"
    for name in ("restricted_loss_test", "excluded_loss"):
        if getattr(rec, name) is None:
            rec.null_reasons[name] = "no analysed pair lies in that split"


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
