"""The training loop: a short loop with evaluation, checkpointing and logging as small pieces.

Evaluation (full train and test sets, fast path, no gradients) runs at step 0, every
``eval_every`` steps and at the last step; each result is appended to ``metrics.jsonl``, with the
float32 softmax-collapse and zero-loss fractions of the training split (:mod:`groklab.analysis.collapse`).
Checkpoints hold everything needed to continue bit-identically; snapshots hold the weights only,
on the schedule of :class:`~groklab.train.checkpoint.SnapshotSchedule` (see :mod:`.checkpoint`).
At a step with both, the snapshot is written first, so every snapshot up to a checkpoint is on
disk when the checkpoint is; a resumed run rewrites the snapshots after its checkpoint.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from groklab.analysis.collapse import softmax_collapse
from groklab.config import Config, to_dict
from groklab.conventions import GROK_HOLD_ACC
from groklab.data import Dataset, make_dataset
from groklab.models import MLPModel, Transformer, build_model, eval_mode, weight_norm_sq
from groklab.runs import Run
from groklab.train.allocator import tune_allocator
from groklab.train.checkpoint import SnapshotSchedule, capture_rng, checkpoint_steps, restore_rng
from groklab.train.interventions import Interventions, training_loss
from groklab.train.optim import build_optimizer, build_scheduler

__all__ = ["Callback", "EvalResult", "TrainResult", "Trainer", "resolve_device"]


@dataclass
class EvalResult:
    step: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    weight_norm: float  # sqrt of the sum of squares of all parameters
    weight_norm_sq: float  # sum of squares of all parameters
    elapsed_s: float
    softmax_collapse: float | None = None  # train split, float32 (analysis/collapse.py)
    zero_loss_frac: float | None = None  # train split, float32 cross-entropy exactly 0

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    state: str  # completed | failed | interrupted
    step: int
    error: str | None = None
    last_eval: EvalResult | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def loss_and_acc(logits: Tensor, labels: Tensor, loss_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    loss = F.cross_entropy(logits.to(loss_dtype), labels)
    acc = (logits.argmax(-1) == labels).to(loss_dtype).mean()
    return loss, acc


class Callback:
    """A piece injected into the loop; override what you need. ``on_eval`` may return True to stop
    training after this evaluation (the run then ends ``completed``, with a checkpoint)."""

    def on_step(self, trainer: Trainer, loss: float) -> None:
        """After every optimizer step (``trainer.step`` already counts it)."""

    def on_eval(self, trainer: Trainer, result: EvalResult) -> bool | None:
        """After every evaluation, once its record is in ``metrics.jsonl``."""
        return None


class _EvalFunction(Callback):
    def __init__(self, fn: Callable[[EvalResult], None]) -> None:
        self.fn = fn

    def on_eval(self, trainer: Trainer, result: EvalResult) -> None:
        self.fn(result)


class Trainer:
    """Train ``cfg`` into ``run``. ``model`` (default: built from ``cfg.model`` with ``cfg.seed``) may
    be one the caller built: a groklab Transformer or MLPModel whose ``cfg`` is ``cfg.model``.
    ``callbacks`` are :class:`Callback` objects, or plain functions called with every :class:`EvalResult`."""

    def __init__(
        self,
        cfg: Config,
        run: Run,
        on_eval: Callable[[EvalResult], None] | None = None,
        *,
        model: Transformer | MLPModel | None = None,
        callbacks: list[Callback | Callable[[EvalResult], None]] | None = None,
    ) -> None:
        self.cfg, self.run_dir = cfg, run
        tune_allocator()  # keep freed step memory in the process (glibc; train/allocator.py)
        given = list(callbacks or []) + ([on_eval] if on_eval is not None else [])
        self.callbacks = [c if isinstance(c, Callback) else _EvalFunction(c) for c in given]
        self.device = resolve_device(cfg.train.device)
        self.loss_dtype = getattr(torch, cfg.train.loss_dtype)
        self.ds: Dataset = make_dataset(cfg.task.op, cfg.task.p)
        train_pairs, test_pairs = run.split
        rows_train = self.ds.rows(torch.from_numpy(train_pairs))
        rows_test = self.ds.rows(torch.from_numpy(test_pairs))
        self.x_train, self.y_train = (t[rows_train].to(self.device) for t in (self.ds.tokens, self.ds.labels))
        self.x_test, self.y_test = (t[rows_test].to(self.device) for t in (self.ds.tokens, self.ds.labels))
        if model is None:
            model = build_model(cfg.model, cfg.task.p, seed=cfg.seed)
        self.model = check_model(model, cfg).to(self.device)
        self.opt = build_optimizer(self.model, cfg.optim)
        self.interventions = Interventions(cfg, self.model)  # filters, projection, fixed norm
        self.sched = build_scheduler(self.opt, cfg.optim.warmup_steps)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # minibatch order only
        self.perm: Tensor | None = None
        self.perm_pos = 0
        self.step = 0
        self.elapsed = 0.0
        self.history: list[tuple[int, float]] = []  # (step, test_acc) for stop_after_grok
        self.ckpt_steps = checkpoint_steps(cfg.train.steps, cfg.train.checkpoint_every)
        self.snapshots = SnapshotSchedule(cfg.train.snapshot_every)
        self.stop_reason: str | None = None

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed,
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "interventions": self.interventions.state_dict(),
            "rng": capture_rng(self.generator),
            "sampler": {"perm": self.perm, "pos": self.perm_pos},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.interventions.load_state_dict(state.get("interventions"))
        restore_rng(state["rng"], self.generator)
        self.perm, self.perm_pos = state["sampler"]["perm"], state["sampler"]["pos"]
        self.step, self.elapsed = state["step"], state["elapsed_s"]
        self.run_dir.truncate_metrics(self.step)
        self.run_dir.truncate_snapshots(self.step)
        records = self.run_dir.metric_records()
        self.history = [(r["step"], r["test_acc"]) for r in records]
        self.snapshots = SnapshotSchedule.replay(self.cfg.train.snapshot_every, records)

    def save(self) -> None:
        self.run_dir.save_checkpoint(self.step, self.state_dict())

    def snapshot_if_due(self, result: EvalResult | None, last: bool) -> None:
        """Write the weights-only snapshot of this step when the schedule says so (``result``: this
        step's evaluation, if it had one; ``last``: training ends here)."""
        if self.snapshots.due(self.step, None if result is None else result.to_record(), last):
            self.run_dir.save_snapshot(self.step, self.model.state_dict())

    # -- pieces -------------------------------------------------------------------------------------
    def next_batch(self) -> tuple[Tensor, Tensor]:
        bs = self.cfg.train.batch_size
        n = len(self.y_train)
        if bs is None or bs >= n:
            return self.x_train, self.y_train
        if self.perm is None or self.perm_pos + bs > n:
            self.perm, self.perm_pos = torch.randperm(n, generator=self.generator), 0
        idx = self.perm[self.perm_pos : self.perm_pos + bs].to(self.device)
        self.perm_pos += bs
        return self.x_train[idx], self.y_train[idx]

    def evaluate(self) -> EvalResult:
        with eval_mode(self.model):
            return self.result_from_logits(self.model.forward_last(self.x_train), self.model.forward_last(self.x_test))

    def result_from_logits(self, tr_logits: Tensor, te_logits: Tensor) -> EvalResult:
        """The evaluation record of this step from the logits of the whole train and test splits
        (computed here, or by an ensemble for all its members at once); the weight norm is read
        from ``self.model``."""
        tr_loss, tr_acc = loss_and_acc(tr_logits, self.y_train, self.loss_dtype)
        te_loss, te_acc = loss_and_acc(te_logits, self.y_test, self.loss_dtype)
        collapse = softmax_collapse(tr_logits, self.y_train)  # float32 whatever loss_dtype is
        sq = weight_norm_sq(self.model)
        return EvalResult(
            step=self.step,
            train_loss=float(tr_loss),
            train_acc=float(tr_acc),
            test_loss=float(te_loss),
            test_acc=float(te_acc),
            lr=float(self.opt.param_groups[0]["lr"]),
            weight_norm=math.sqrt(sq),
            weight_norm_sq=sq,
            elapsed_s=round(self.elapsed, 3),
            softmax_collapse=collapse.softmax_collapse,
            zero_loss_frac=collapse.zero_loss_frac,
        )

    def log(self, result: EvalResult) -> bool:
        """Record an evaluation and tell the callbacks; True when one of them asks to stop."""
        self.run_dir.append_metrics(result.to_record())
        self.history.append((result.step, result.test_acc))
        return any([bool(c.on_eval(self, result)) for c in self.callbacks])

    def grok_held_for(self) -> int | None:
        """Steps since test accuracy reached GROK_HOLD_ACC and stayed there, or None."""
        since = None
        for step, acc in self.history:
            since = (since if since is not None else step) if acc >= GROK_HOLD_ACC else None
        return None if since is None else self.step - since

    # -- the loop ------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        cfg = self.cfg.train
        last: EvalResult | None = None
        if self.step == 0:
            last = self.evaluate()
            self.log(last)
            self.snapshot_if_due(last, last=False)
            self.save()
        self.run_dir.write_status("running", self.step)
        with _stop_on_sigint(self):
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                x, y = self.next_batch()
                loss = training_loss(self.cfg.train.loss, self.model.forward_last(x), y, self.loss_dtype)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    error = f"non-finite training loss ({loss_value}) at step {self.step}"
                    self.save()
                    self.run_dir.write_status("failed", self.step, error)
                    return TrainResult("failed", self.step, error, last)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.interventions.before_step()  # Grokfast filter, then the orthogonal projection
                self.opt.step()
                self.interventions.after_step()  # fixed-norm rescale
                self.sched.step()
                self.step += 1
                self.elapsed += time.perf_counter() - t0
                for c in self.callbacks:
                    c.on_step(self, loss_value)
                done = self.step == cfg.steps
                evaluated = None
                if self.step % cfg.eval_every == 0 or done:
                    last = evaluated = self.evaluate()
                    done = self.log(last) or done
                    held = self.grok_held_for()
                    if cfg.stop_after_grok is not None and held is not None and held >= cfg.stop_after_grok:
                        done = True
                self.snapshot_if_due(evaluated, last=done)
                if done or self.step in self.ckpt_steps or self.stop_reason:
                    self.save()
                if done:
                    break
                if self.stop_reason:
                    self.run_dir.write_status("interrupted", self.step, self.stop_reason)
                    return TrainResult("interrupted", self.step, self.stop_reason, last)
        self.run_dir.write_status("completed", self.step)
        return TrainResult("completed", self.step, None, last)


def check_model(model: Any, cfg: Config) -> Transformer | MLPModel:
    """A model given to the trainer must be one the run directory can rebuild: a groklab model of
    the run's architecture and task (its config is what ``config.yaml`` records)."""
    if not isinstance(model, Transformer | MLPModel):
        raise TypeError(
            f"the trainer takes a groklab Transformer or MLPModel, got {type(model).__name__} "
            "(convert a HookedTransformer with groklab.from_hooked_transformer)"
        )
    if model.cfg != cfg.model or model.p != cfg.task.p:
        raise ValueError("the model's config differs from the run's (cfg.model and cfg.task.p must describe it)")
    return model


class _stop_on_sigint:
    """First Ctrl-C asks the loop to checkpoint and stop after the current step; a second one
    interrupts at once. Only installed in the main thread."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.trainer.stop_reason:
            raise KeyboardInterrupt
        self.trainer.stop_reason = "interrupted by user (SIGINT)"

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
