"""The local learning coefficient (LLC; Lau et al., devinterp) of a model state, and its calibration.

    lambda = n_beta * (E[L_n(w)] - L_n(w*))

over localized SGLD draws w around the state w* (DESIGN section 6), with L_n the mean train
cross-entropy over the whole training split (full batch), in float64 (the model is copied to
float64). The sampler is devinterp's (``SGLD`` with ``nbeta``, ``localization`` = gamma, ``lr`` =
epsilon; MALA acceptance from ``MalaAcceptanceRate``); nothing here re-implements it. The estimate
is sensitive to epsilon and n_beta, so :func:`calibrate_llc` runs a grid of them at one state with
the chains' traces and acceptance rates. It is measured on the training split only, and costs
chains x (burnin + draws) full-batch forward and backward passes per state: opt-in in
``groklab analyze --llc``.

Oracle (tests/analysis/test_llc.py): for L(w) = 1/2 sum_i h_i (w_i - w*_i)^2 the localized
posterior is Gaussian with precisions n_beta h_i + gamma, so E[lambda] = 1/2 sum_i n_beta h_i /
(n_beta h_i + gamma) (-> d/2 when n_beta h >> gamma), and a degenerate model gives less.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from groklab.config import LLCConfig
from groklab.records.lenses import LLCCell, LLCPoint

__all__ = ["LLCSample", "calibrate_llc", "llc_of_loss", "llc_of_model", "llc_point", "quadratic_llc"]

LossFn = Callable[[nn.Module, tuple[Tensor, ...]], Tensor]


@dataclass
class LLCSample:
    """One estimate: mean and std over chains, each chain's LLC, traces and MALA acceptance."""

    mean: float
    std: float
    chains: list[float]
    init_loss: float
    loss_trace: np.ndarray  # [chain, draw]: L_n at each draw
    acceptance: np.ndarray  # [chain]: mean MALA acceptance probability of the chain's draws
    seconds: float


def quadratic_llc(h: Tensor, n_beta: float, gamma: float) -> float:
    """The closed form 1/2 sum_i n_beta h_i / (n_beta h_i + gamma) for Hessian eigenvalues h."""
    return float((n_beta * h / (n_beta * h + gamma)).sum() / 2)


def llc_of_loss(
    model: nn.Module, loss: LossFn, batch: tuple[Tensor, ...], settings: LLCConfig, seed: int = 0
) -> LLCSample:
    """Run devinterp's localized SGLD on ``loss(model, batch)`` around ``model``'s weights (full
    batch: every draw sees all of ``batch``). ``model`` is not changed."""
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.mala import MalaAcceptanceRate
    from devinterp.slt.sampler import sample

    n = len(batch[0])
    loader = DataLoader(TensorDataset(*batch), batch_size=n, shuffle=False)
    with torch.no_grad():
        init_loss = float(loss(model, batch))
    trace = _LossTrace(settings.chains, settings.draws)
    mala = MalaAcceptanceRate(settings.chains, settings.draws, learning_rate=settings.epsilon, nbeta=settings.n_beta)
    t0 = time.perf_counter()
    with _quiet(), torch.random.fork_rng():  # the sampler seeds torch's global generator
        sample(
            model,
            loader,
            callbacks=[trace, mala],
            evaluate=lambda m, data: loss(m, tuple(data)),
            sampling_method=SGLD,
            optimizer_kwargs={"lr": settings.epsilon, "localization": settings.gamma, "nbeta": settings.n_beta},
            num_draws=settings.draws,
            num_chains=settings.chains,
            num_burnin_steps=settings.burnin,
            init_loss=init_loss,
            seed=seed,
            cores=1,
            verbose=False,
        )
    per_chain = settings.n_beta * (trace.losses.mean(1) - init_loss)  # [chain]
    acc = np.asarray(mala.get_results()["mala_accept/trace"], dtype=float)  # [chain, draw - 1]
    return LLCSample(
        mean=float(per_chain.mean()),
        std=float(per_chain.std(ddof=1)) if len(per_chain) > 1 else 0.0,
        chains=[float(v) for v in per_chain],
        init_loss=init_loss,
        loss_trace=trace.losses,
        acceptance=acc[:, 1:].mean(1) if acc.shape[1] > 1 else np.full(len(per_chain), np.nan),
        seconds=time.perf_counter() - t0,
    )


class _LossTrace:
    """A devinterp sampler callback keeping each draw's loss in float64 (devinterp's LLCEstimator
    stores float32, which loses the difference E[L] - L(w*) once the train loss is ~1e-7)."""

    def __init__(self, chains: int, draws: int) -> None:
        self.losses = np.zeros((chains, draws))

    def __call__(self, chain: int, draw: int, loss: Tensor, **_: object) -> None:
        self.losses[chain, draw] = float(loss)


def _cross_entropy(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    x, y = batch
    return F.cross_entropy(model.forward_last(x), y)  # type: ignore[operator]


def llc_of_model(model: nn.Module, x: Tensor, y: Tensor, settings: LLCConfig, seed: int = 0) -> LLCSample:
    """The LLC of a groklab model (``forward_last``) on the training tokens ``x [n, 3]``, labels
    ``y [n]``: mean cross-entropy in float64, full batch."""
    m64 = copy.deepcopy(model).to(torch.float64)
    return llc_of_loss(m64, _cross_entropy, (x, y), settings, seed)


def llc_point(step: int, sample: LLCSample, test_loss: float | None) -> LLCPoint:
    return LLCPoint(
        step=step,
        mean=sample.mean,
        std=sample.std,
        chains=sample.chains,
        init_loss=sample.init_loss,
        acceptance=float(sample.acceptance.mean()),
        test_loss=test_loss,
        seconds=round(sample.seconds, 2),
    )


def calibrate_llc(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    settings: LLCConfig,
    epsilons: list[float],
    n_betas: list[float],
    seed: int = 0,
) -> list[LLCCell]:
    """An epsilon x n_beta grid at one state, the other settings from ``settings``: per cell the
    estimate, per-chain loss traces (to see whether chains settle) and MALA acceptance (well
    below ~0.9: epsilon too large for the discretisation to be trusted)."""
    cells = []
    for eps in epsilons:
        for nb in n_betas:
            r = llc_of_model(model, x, y, replace(settings, epsilon=eps, n_beta=nb), seed)
            finite = bool(np.isfinite(r.loss_trace).all() and np.isfinite(r.mean))
            cells.append(
                LLCCell(
                    epsilon=eps,
                    n_beta=nb,
                    mean=r.mean if finite else None,
                    std=r.std if finite else None,
                    acceptance=float(r.acceptance.mean()) if finite else None,
                    init_loss=r.init_loss,
                    loss_trace=[[float(v) for v in chain] for chain in r.loss_trace],
                    diverged=not finite,
                )
            )
    return cells


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """devinterp warns (deprecations, draws vs burn-in) and may print; library code stays silent."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
