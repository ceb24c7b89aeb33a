"""Interventions against their formulas (DESIGN section 6), base-optimizer pass-through, exact resume."""

import math

import pytest
import torch
from torch import nn

from groklab.config import load_config
from groklab.models import build_model, weight_norm_sq
from groklab.runs import Run, load_checkpoint
from groklab.train import Callback, resume_training, start_training
from groklab.train.interventions import (
    FixedNorm,
    GrokfastEMA,
    GrokfastMA,
    Interventions,
    orthogonalize_,
    stablemax_cross_entropy,
    stablemax_probs,
    training_loss,
)
from groklab.train.optim import build_optimizer


def _params(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]


def _grad_sequence(n, shapes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(*s, generator=g) for s in shapes] for _ in range(n)]


def _apply(flt, params, grads):
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    flt.apply_(params)
    return [p.grad.clone() for p in params]


def test_grokfast_ema_follows_its_recursion_step_by_step():
    shapes = [(3, 2), (4,)]
    params, seq = _params(*shapes), _grad_sequence(5, shapes)
    alpha, lamb = 0.9, 2.0
    flt = GrokfastEMA(alpha, lamb)
    h = None
    for grads in seq:
        out = _apply(flt, params, grads)
        h = (
            [g.clone() for g in grads]
            if h is None
            else [alpha * hi + (1 - alpha) * g for hi, g in zip(h, grads, strict=True)]
        )
        for o, g, hi in zip(out, grads, h, strict=True):
            torch.testing.assert_close(o, g + lamb * hi, rtol=1e-6, atol=1e-6)
    # the first step: h = g, so the gradient is (1 + lamb) g
    first = _apply(GrokfastEMA(alpha, lamb), params, seq[0])
    torch.testing.assert_close(first[0], (1 + lamb) * seq[0][0])


def test_grokfast_ma_adds_the_window_mean_once_full():
    shapes = [(2, 3)]
    params, seq = _params(*shapes), _grad_sequence(7, shapes)
    window, lamb = 3, 5.0
    flt = GrokfastMA(window, lamb)
    for t, grads in enumerate(seq):
        out = _apply(flt, params, grads)
        if t + 1 < window:
            assert torch.equal(out[0], grads[0])  # window not full: the gradient is untouched
        else:
            mean = torch.stack([seq[s][0] for s in range(t + 1 - window, t + 1)]).mean(0)
            torch.testing.assert_close(out[0], grads[0] + lamb * mean, rtol=1e-6, atol=1e-6)
    assert len(flt.history) == window


def test_orthogonal_gradient_is_orthogonal_to_the_weights_with_the_same_norm():
    params = _params((5, 4), (7,), seed=3)
    grads = [g[0] for g in _grad_sequence(1, [(5, 4)], seed=4)] + [torch.randn(7)]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    orthogonalize_(params)
    for w, g in zip([p.detach() for p in params], grads, strict=True):
        out = params[0].grad if w.shape == params[0].shape else params[1].grad
        assert abs(float((out * w).sum())) < 1e-5 * float(out.norm() * w.norm())
        assert math.isclose(float(out.norm()), float(g.norm()), rel_tol=1e-6)
        expected = g - (w * g).sum() / (w * w).sum() * w
        torch.testing.assert_close(out, expected * g.norm() / expected.norm())


def test_stablemax_probabilities_equal_the_formula():
    z = torch.tensor([[0.0, 1.0, -1.0], [3.0, -4.0, 0.5]])
    s = torch.tensor([[1.0, 2.0, 0.5], [4.0, 0.2, 1.5]])  # x + 1 for x >= 0, 1 / (1 - x) below
    probs = stablemax_probs(z)
    torch.testing.assert_close(probs, s / s.sum(-1, keepdim=True))
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    labels = torch.tensor([1, 0])
    loss = stablemax_cross_entropy(z, labels)
    assert loss.dtype == torch.float64
    expected = -(math.log(2.0 / 3.5) + math.log(4.0 / 5.7)) / 2
    assert math.isclose(float(loss), expected, rel_tol=1e-12)
    # large logits stay finite where softmax would saturate: s grows linearly
    assert torch.isfinite(stablemax_cross_entropy(torch.tensor([[1e6, -1e6, 0.0]]), torch.tensor([1])))
    # the trainer's objective dispatches on train.loss
    assert training_loss("stablemax", z, labels, torch.float32) == loss


def test_fixed_norm_rescales_jointly_to_the_initial_norm():
    params = _params((3, 3), (2,))
    fixed = FixedNorm(params)
    target = math.sqrt(sum(float(p.double().pow(2).sum()) for p in params))
    with torch.no_grad():
        params[0].mul_(3.0)
        params[1].add_(1.0)
    ratio = params[0].detach().clone() / params[1].detach().norm()
    fixed.apply_(params)
    assert math.isclose(math.sqrt(sum(float(p.double().pow(2).sum()) for p in params)), target, rel_tol=1e-6)
    torch.testing.assert_close(params[0].detach() / params[1].detach().norm(), ratio)  # a joint rescale


def test_training_holds_the_fixed_norm_after_every_step_and_init_scale_scales_it(tmp_path):
    class Norms(Callback):
        def __init__(self):
            self.seen = []

        def on_step(self, trainer, loss):
            self.seen.append(weight_norm_sq(trainer.model) ** 0.5)

    over = ["train.steps=30", "train.eval_every=5", "optim.weight_decay=0", "optim.fixed_norm=true"]
    norms = Norms()
    run, _ = start_training(load_config("debug", [*over, "model.init_scale=0.5"]), tmp_path / "r", callbacks=[norms])
    cfg = load_config("debug")
    plain = build_model(cfg.model, cfg.task.p, seed=cfg.seed)
    norm_at_1 = weight_norm_sq(plain) ** 0.5
    assert math.isclose(run.metric_records()[0]["weight_norm"], 0.5 * norm_at_1, rel_tol=1e-6)
    assert len(norms.seen) == 30 and all(math.isclose(n, 0.5 * norm_at_1, rel_tol=1e-5) for n in norms.seen)
    free = start_training(load_config("debug", [*over[:3], "model.init_scale=0.5"]), tmp_path / "free")[0]
    assert not math.isclose(free.metric_records()[-1]["weight_norm"], 0.5 * norm_at_1, rel_tol=1e-3)  # it would move


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("adamw", {"lr": 0.02, "weight_decay": 0.3, "betas": (0.8, 0.95)}),
        ("adam", {"lr": 0.02, "weight_decay": 0.3, "betas": (0.8, 0.95)}),
        ("sgd", {"lr": 0.02, "weight_decay": 0.3, "momentum": 0.7}),
    ],
)
def test_every_base_optimizer_setting_reaches_the_base_optimizer(name, expected):
    over = [f"optim.name={name}", "optim.lr=0.02", "optim.weight_decay=0.3", "optim.betas=[0.8,0.95]"]
    over += ["optim.momentum=0.7", "optim.orthogonal=true", "optim.grokfast.kind=ema", "optim.warmup_steps=0"]
    cfg = load_config("debug", over)
    model = build_model(cfg.model, cfg.task.p, seed=0)
    opt = build_optimizer(model, cfg.optim)
    assert type(opt).__name__.lower() == name
    group = opt.param_groups[0]
    for key, value in expected.items():
        assert group[key] == value, key
    # one step with the wrapper equals the base optimizer, built by hand, on the projected gradient
    twin = build_model(cfg.model, cfg.task.p, seed=0)
    interventions = Interventions(cfg, model)
    tokens = torch.tensor([[1, 2, 17], [3, 4, 17]])
    for m in (model, twin):
        m.forward_last(tokens).sum().backward()
    interventions.before_step()
    opt.step()
    hand = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    hand_opt = hand(list(twin.parameters()), **expected)
    with torch.no_grad():
        for w in twin.parameters():
            g = w.grad * 3.0  # Grokfast EMA at the first step: g + 2.0 * g
            g = g - (w * g).sum() / ((w * w).sum() + 1e-30) * w
            w.grad = g * (w.grad * 3.0).norm() / g.norm()
    hand_opt.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def _final(run_dir):
    step, path = Run(run_dir).checkpoints()[-1]
    return step, load_checkpoint(path)


@pytest.mark.parametrize(
    "options",
    [
        ["optim.name=sgd", "optim.lr=0.05", "optim.grokfast.kind=ema", "optim.orthogonal=true"]
        + ["optim.fixed_norm=true", "optim.weight_decay=0", "train.loss=stablemax", "model.init_scale=0.7"],
        ["optim.name=adam", "optim.grokfast.kind=ma", "optim.grokfast.window=7", "optim.orthogonal=true"]
        + ["train.loss=stablemax", "train.batch_size=32"],
    ],
    ids=["sgd-ema-orthogonal-fixednorm-stablemax", "adam-ma-orthogonal-stablemax-minibatch"],
)
def test_resume_is_bit_identical_with_every_option_on(tmp_path, options):
    over = ["train.steps=60", "train.eval_every=10", "train.checkpoint_every=20", *options]
    start_training(load_config("debug", over), tmp_path / "straight")
    run, _ = start_training(load_config("debug", over), tmp_path / "resumed")
    for step, path in run.checkpoints():
        if step > 20:
            path.unlink()  # as if killed after the checkpoint at step 20
    run.truncate_metrics(27)
    state = load_checkpoint(run.checkpoints()[-1][1])
    assert state["interventions"]["filter"] is not None  # the filter's state is in the checkpoint
    resume_training(run.path)
    (s1, c1), (s2, c2) = _final(tmp_path / "straight"), _final(run.path)
    assert s1 == s2 == 60
    assert all(torch.equal(c1["model"][k], c2["model"][k]) for k in c1["model"])
    assert [r["test_loss"] for r in Run(tmp_path / "straight").metric_records()] == [
        r["test_loss"] for r in run.metric_records()
    ]


def test_options_off_train_exactly_as_before(tmp_path):
    """With every option at its default the step is the plain one: no filter, projection or rescale."""
    cfg = load_config("debug", ["train.steps=5"])
    trainer_model = build_model(cfg.model, cfg.task.p, seed=0)
    assert not Interventions(cfg, trainer_model).active
    run, _ = start_training(cfg, tmp_path / "r")
    assert load_checkpoint(run.checkpoints()[-1][1])["interventions"] == {"filter": None, "fixed_norm": None}


def test_stablemax_training_takes_the_folded_path(tmp_path, monkeypatch):
    import groklab.models.transformer as transformer

    calls = []
    original = transformer.folded_logits
    monkeypatch.setattr(transformer, "folded_logits", lambda *a: calls.append(1) or original(*a))
    cfg = load_config("debug", ["train.steps=3", "train.eval_every=10", "train.loss=stablemax"])
    assert build_model(cfg.model, cfg.task.p).fast_path == "folded"
    start_training(cfg, tmp_path / "r")
    assert len(calls) == 3 + 2 * 2  # every training step, and train + test at the evaluations of steps 0 and 3


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.grokfast.lamb=-1", "optim.grokfast.lamb"),
        ("optim.grokfast.alpha=1.0", "optim.grokfast.alpha"),
        ("optim.grokfast.alpha=-0.1", "optim.grokfast.alpha"),
        ("optim.grokfast.window=0", "optim.grokfast.window"),
        ("optim.grokfast.kind=kalman", "optim.grokfast.kind"),
        ("train.loss=hinge", "train.loss"),
        ("model.init_scale=0", "model.init_scale"),
        ("optim.momentum=1.5", "optim.momentum"),
    ],
)
def test_bad_intervention_values_are_one_line_errors(tmp_path, cli, override, key):
    r = cli("train", "--config", "debug", "--set", override, "--out", tmp_path / "r")
    assert r.returncode == 2
    assert key in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
