"""Many seeds in one process (DESIGN section 9): an ensemble of members, one batched step.

Each member is an ordinary run: it has its own :class:`~groklab.train.loop.Trainer` for everything
but the arithmetic (run directory, split, minibatch order, schedule, evaluation records, stopping,
snapshots, checkpoints, callbacks), and its directory is indistinguishable from a separate run's.
The arithmetic is shared: the members' parameters are stacked along a leading dimension
(:mod:`groklab.train.stacked`) and every step runs one forward, one backward and one update for
all members. The members' weights and optimizer states are copied back into their trainers only
where something reads them (evaluation, snapshot, checkpoint), so the files are written by the
same code as a separate run's.

Why explicit stacked weights rather than ``torch.func.vmap`` of the whole step: the canonical
model's folded path sums table rows with ``embedding_bag`` and a hand-written backward, which vmap
cannot batch; with the tables of all members flattened into one table the sums for all members
are one kernel. Other models do go through vmap (``stacked_logits``).

A member that stops (its own ``stop_after_grok`` or a callback's rule, a non-finite loss) leaves
the batch; the others go on. Members checkpoint on the same schedule; a killed ensemble resumes
from the newest step at which every member that was still training has a valid checkpoint, with
the members that stopped after that step rewound too, so the resumed batch is the batch that ran
and every member continues bit for bit (:func:`resume_ensemble`).

What shares a batch: configs equal up to :data:`SHAPE_FREE_KEYS` (values that leave every tensor
shape and every update rule alone). Grokfast, the orthogonal projection and the fixed norm are
not batched (:func:`batch_refusal`); such runs train one at a time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from groklab.config import Config, ConfigError, to_dict, to_yaml
from groklab.data import make_dataset, make_split
from groklab.runs import Run, RunError
from groklab.train.checkpoint import load_newest_valid
from groklab.train.interventions import training_loss
from groklab.train.loop import Callback, EvalResult, Trainer, TrainResult, _stop_on_sigint
from groklab.train.stacked import StackedOptimizer, stack_params, stacked_logits

__all__ = [
    "SHAPE_FREE_KEYS",
    "Ensemble",
    "batch_key",
    "batch_refusal",
    "member_configs",
    "resume_ensemble",
    "start_ensemble",
]

SHAPE_FREE_KEYS = ("name", "seed", "task.split_seed", "optim.lr", "optim.weight_decay", "model.init_scale")


def member_configs(cfg: Config, seeds: Sequence[int]) -> list[Config]:
    """Member S of ``--seeds``: seed = S and split_seed = S, everything else as ``cfg``."""
    return [replace(cfg, seed=s, task=replace(cfg.task, split_seed=s)) for s in seeds]


def batch_key(cfg: Config) -> str:
    """Configs with equal keys can train in one batch (they differ in SHAPE_FREE_KEYS at most)."""
    d = to_dict(cfg)
    for key in SHAPE_FREE_KEYS:
        *parents, leaf = key.split(".")
        node = d
        for k in parents:
            node = node[k]
        node.pop(leaf, None)
    return json.dumps(d, sort_keys=True, default=str)


def batch_refusal(cfg: Config) -> str | None:
    """Why ``cfg`` cannot train in an ensemble, or None."""
    o = cfg.optim
    on = [k for k, v in (("optim.grokfast", o.grokfast.kind != "none"), ("optim.orthogonal", o.orthogonal),
                         ("optim.fixed_norm", o.fixed_norm)) if v]  # fmt: skip
    if on:
        return f"{', '.join(on)} act on each run's whole gradient or norm and are not batched; train such runs one at a time"
    return None


class Ensemble:
    """Train ``trainers`` (all at the same step, configs with one :func:`batch_key`) together."""

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        if not trainers:
            raise ValueError("an ensemble needs at least one member")
        keys = {batch_key(t.cfg) for t in trainers}
        if len(keys) > 1:
            raise ConfigError("ensemble members differ in more than seed, split_seed, lr, weight_decay, init_scale")
        why = batch_refusal(trainers[0].cfg)
        if why:
            raise ConfigError(why)
        steps = {t.step for t in trainers}
        if len(steps) > 1:
            raise ValueError(f"ensemble members must start at one step, got {sorted(steps)}")
        self.active = list(trainers)
        for t in trainers:  # its torch optimizer keeps the state's layout; the update is the stacked one
            t.opt._opt_called = True  # type: ignore[attr-defined]  # (silences the scheduler's order check)
        self.step = trainers[0].step
        self.cfg = trainers[0].cfg
        self.template = trainers[0].model
        self.params = stack_params([t.model for t in trainers])
        self.opt = StackedOptimizer(self.params, self.cfg.optim, [t.cfg.optim.weight_decay for t in trainers])
        torch_states = [[t.opt.state.get(p, {}) for p in t.model.parameters()] for t in trainers]
        self.opt.load_members(torch_states, self.step)
        self.x_test = torch.stack([t.x_test for t in trainers])
        self.x_train = torch.stack([t.x_train for t in trainers])
        self.y_train = torch.stack([t.y_train for t in trainers])
        bs = self.cfg.train.batch_size
        self.full_batch = bs is None or bs >= self.y_train.shape[1]  # every step: the stacks above
        self.stop_reason: str | None = None
        self.on_eval: Callable[[int, int], None] | None = None  # (step, members still training)
        self.results: dict[int, TrainResult] = {}  # by id(trainer)

    # -- members ------------------------------------------------------------------------------------
    def sync(self) -> None:
        """Copy each active member's slice of weights and optimizer state into its trainer."""
        for m in range(len(self.active)):
            self._sync_one(m)

    def leave(self, gone: Sequence[int]) -> None:
        """Members at positions ``gone`` leave the batch (their files are already written)."""
        if not gone:
            return
        keep = [m for m in range(len(self.active)) if m not in set(gone)]
        index = torch.tensor(keep, device=self.x_train.device)
        self.active = [self.active[m] for m in keep]
        if not keep:
            return
        self.params = {n: t.detach().index_select(0, index).requires_grad_() for n, t in self.params.items()}
        self.opt.params = self.params
        self.opt.keep(index)
        self.x_train, self.x_test = self.x_train.index_select(0, index), self.x_test.index_select(0, index)
        self.y_train = self.y_train.index_select(0, index)

    def _sync_one(self, m: int) -> None:
        t = self.active[m]
        with torch.no_grad():
            for (name, p), st in zip(t.model.named_parameters(), self.opt.member_state(m), strict=True):
                p.copy_(self.params[name][m])
                if st:
                    t.opt.state[p] = st

    def finish(self, m: int, result: TrainResult) -> None:
        self.results[id(self.active[m])] = result

    # -- pieces -------------------------------------------------------------------------------------
    def evaluate(self) -> list[EvalResult]:
        """Every active member's evaluation record (weights synced into the trainers first)."""
        with torch.no_grad():
            tr = stacked_logits(self.template, self.params, self.x_train)
            te = stacked_logits(self.template, self.params, self.x_test)
        self.sync()
        return [t.result_from_logits(tr[m], te[m]) for m, t in enumerate(self.active)]

    def forward_backward(self) -> list[float]:
        """Each member's training loss on its next batch, and the gradients of the finite ones."""
        if self.full_batch:  # the stacked splits, not a fresh stack of them every step
            x, y = self.x_train, self.y_train
        else:
            batches = [t.next_batch() for t in self.active]  # each member's own minibatch order
            x, y = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
        logits = stacked_logits(self.template, self.params, x)
        kind, dtype = self.cfg.train.loss, self.active[0].loss_dtype
        # unbind: one stack in the backward, where S slices would each write an [S, batch, p] zero tensor
        losses = [
            training_loss(kind, lg, target, dtype) for lg, target in zip(logits.unbind(0), y.unbind(0), strict=True)
        ]
        values = torch.stack([v.detach().to(torch.float64) for v in losses]).tolist()
        finite = [loss for loss, v in zip(losses, values, strict=True) if math.isfinite(v)]
        self.opt.zero_grad()
        if finite:
            torch.stack(finite).sum().backward()  # member m's slice gets the gradient of its own loss
        return values

    # -- the loop -----------------------------------------------------------------------------------
    def train(self) -> list[TrainResult]:
        """Train until every member has stopped; results in the order the members were given."""
        order = list(self.active)
        cfg = self.cfg.train
        if self.step == 0:
            for t, r in zip(self.active, self.evaluate(), strict=True):
                t.log(r)
                t.snapshot_if_due(r, last=False)
                t.save()
        for t in self.active:
            t.run_dir.write_status("running", t.step)
        with _stop_on_sigint(self):  # type: ignore[arg-type]  # anything with a stop_reason
            while self.active:
                t0 = time.perf_counter()
                values = self.forward_backward()
                bad = [m for m, v in enumerate(values) if not math.isfinite(v)]
                for m in bad:  # saved at the failing step, before any update, as a separate run is
                    t = self.active[m]
                    error = f"non-finite training loss ({values[m]}) at step {t.step}"
                    self._sync_one(m)
                    t.save()
                    t.run_dir.write_status("failed", t.step, error)
                    self.finish(m, TrainResult("failed", t.step, error, None))
                self.opt.step([t.opt.param_groups[0]["lr"] for t in self.active])
                dt = time.perf_counter() - t0
                self.step += 1
                for m, t in enumerate(self.active):
                    if m in bad:
                        continue
                    t.sched.step()
                    t.step += 1
                    t.elapsed += dt
                    for c in t.callbacks:
                        c.on_step(t, values[m])
                self.leave(bad)
                self._after_step(cfg)
        return [self.results[id(t)] for t in order]

    def _after_step(self, cfg: Any) -> None:
        """Evaluation, stopping, snapshots and checkpoints of this step; members that are done leave."""
        step = self.step
        n = len(self.active)
        done = [step == cfg.steps] * n
        evaluated: list[EvalResult | None] = [None] * n
        if step % cfg.eval_every == 0 or step == cfg.steps:
            evaluated = list(self.evaluate())
            if self.on_eval is not None:
                self.on_eval(step, n)
            for m, (t, r) in enumerate(zip(self.active, evaluated, strict=True)):
                assert r is not None
                done[m] = bool(t.log(r)) or done[m]
                held = t.grok_held_for()
                if cfg.stop_after_grok is not None and held is not None and held >= cfg.stop_after_grok:
                    done[m] = True
        elif step in self.active[0].ckpt_steps or self.stop_reason or _snapshot_step(cfg, step):
            self.sync()
        gone = []
        for m, t in enumerate(self.active):
            t.snapshot_if_due(evaluated[m], last=done[m])
            if done[m] or step in t.ckpt_steps or self.stop_reason:
                t.save()
            if done[m]:
                t.run_dir.write_status("completed", t.step)
                self.finish(m, TrainResult("completed", t.step, None, evaluated[m]))
                gone.append(m)
            elif self.stop_reason:
                t.run_dir.write_status("interrupted", t.step, self.stop_reason)
                self.finish(m, TrainResult("interrupted", t.step, self.stop_reason, evaluated[m]))
                gone.append(m)
        self.leave(gone)


def _snapshot_step(cfg: Any, step: int) -> bool:
    every = cfg.snapshot_every
    return bool(every) and step % every == 0


# -- the ensemble directory ------------------------------------------------------------------------
ENSEMBLE_FILE = "ensemble.json"


def member_dir(out: Path, seed: int) -> Path:
    return out / f"seed_{seed}"


def start_ensemble(
    cfgs: Sequence[Config],
    paths: Sequence[Path],
    *,
    callbacks: Callable[[int], list[Callback]] | None = None,
    on_eval: Callable[[int, int], None] | None = None,
) -> list[tuple[Run, TrainResult]]:
    """Create a run directory per member (``paths[i]`` for ``cfgs[i]``) and train them together.
    ``callbacks(i)``: member i's trainer callbacks (each member needs its own objects); ``on_eval``
    is called after each evaluation with the step and the number of members still training."""
    runs = []
    for cfg, path in zip(cfgs, paths, strict=True):
        train, test = make_split(make_dataset(cfg.task.op, cfg.task.p), cfg.task.train_frac, cfg.task.split_seed)
        runs.append(Run.create(path, to_yaml(cfg), train, test))
    with ExitStack() as stack:
        for run in runs:
            stack.enter_context(run.lock())
        trainers = [
            Trainer(c, r, callbacks=list(callbacks(i)) if callbacks else None)
            for i, (c, r) in enumerate(zip(cfgs, runs, strict=True))
        ]
        return list(zip(runs, _train(trainers, on_eval), strict=True))


def resume_ensemble(
    paths: Sequence[Path],
    on_warning: Callable[[str], None] | None = None,
    on_eval: Callable[[int, int], None] | None = None,
) -> list[tuple[Run, TrainResult]]:
    """Continue the members at ``paths`` from the newest step S at which every member still training
    has a valid checkpoint; members that stopped after S are rewound to S as well (the batch that
    ran is the batch that resumes). Members that stopped at or before S are left as they are
    (their result is their status)."""
    runs = [Run.open(p) for p in paths]
    with ExitStack() as stack:
        for run in runs:
            stack.enter_context(run.lock())
        ended = {
            i: int(run.status()["step"])
            for i, run in enumerate(runs)
            if run.status()["state"] in ("completed", "failed")
        }
        training = [i for i in range(len(runs)) if i not in ended]
        if not training:
            return [(r, TrainResult(r.status()["state"], int(r.status()["step"]))) for r in runs]
        newest: dict[int, int] = {}
        for i in training:
            state, warnings = load_newest_valid(runs[i])
            for w in warnings:
                if on_warning:
                    on_warning(w)
            newest[i] = int(state["step"])
        common = min(newest[i] for i in training)
        states: dict[int, dict[str, Any]] = {}
        while True:  # every member to run needs a checkpoint exactly at `common`
            rerun = [i for i in range(len(runs)) if i not in ended or ended[i] > common]
            found = {i: _checkpoint_at_or_before(runs[i], common) for i in rerun}
            lowest = min(s for s, _ in found.values())
            if lowest == common:
                states = {i: st for i, (_, st) in found.items()}
                break
            common = lowest
        trainers = {}
        for i, state in states.items():
            t = Trainer(runs[i].config, runs[i])
            t.load_state_dict(state)
            trainers[i] = t
        results = dict(zip(trainers, _train(list(trainers.values()), on_eval), strict=True))
        out = []
        for i, run in enumerate(runs):
            st = run.status()
            out.append((run, results.get(i) or TrainResult(st["state"], int(st["step"]), st.get("error"))))
        return out


def _checkpoint_at_or_before(run: Run, step: int) -> tuple[int, dict[str, Any]]:
    """The newest valid checkpoint of ``run`` at or before ``step``: (its step, its state)."""
    from groklab.runs import load_checkpoint

    for s, path in reversed(run.checkpoints()):
        if s > step:
            continue
        try:
            return s, load_checkpoint(path, "cpu")
        except RunError:
            continue
    raise RunError(f"{run.path}: no valid checkpoint at or before step {step}")


def _train(trainers: list[Trainer], on_eval: Callable[[int, int], None] | None) -> list[TrainResult]:
    """Train in one batch, recording ``failed`` in every member's status on an exception."""
    ensemble = Ensemble(trainers)
    ensemble.on_eval = on_eval
    try:
        return ensemble.train()
    except BaseException as e:
        from groklab.files import describe_error

        state = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        for t in ensemble.active:
            try:
                t.run_dir.write_status(state, t.step, describe_error(e))
            except OSError:
                pass
        raise
