"""The folded `=` path of 1-layer transformers without LayerNorm against the full hooked forward."""

import pytest
import torch
import torch.nn.functional as F

from groklab.config import load_config
from groklab.data import make_dataset
from groklab.models import build_model, folded
from groklab.models.folded import _row_sums, can_fold

SHAPES = {  # p, then model overrides on the debug preset (d_model 32, 2 heads of 16, d_mlp 64, relu)
    "debug": (17, []),
    "four-heads-gelu": (23, ["model.n_heads=4", "model.d_head=8", "model.d_mlp=48", "model.act=gelu"]),
    "one-head-narrow": (7, ["model.d_model=16", "model.n_heads=1", "model.d_mlp=24"]),
    "wide-odd": (31, ["model.d_model=48", "model.n_heads=3", "model.d_head=20", "model.d_mlp=100", "model.act=gelu"]),
}


def _model(p, overrides, dtype=torch.float32):
    cfg = load_config("debug", [f"task.p={p}", "model.n_layers=1", *overrides])
    return build_model(cfg.model, p, seed=5).to(dtype)


def _batch(p, n=None, seed=0):
    """All pairs, or n of them in a random order (so some tokens are missing from a position)."""
    tokens = make_dataset("add", p).tokens
    if n is not None:
        tokens = tokens[torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed))[:n]]
    return tokens


def _assert_same_gradients(model, full, fast, target, **tolerance):
    params = dict(model.named_parameters())
    g_full = torch.autograd.grad(F.cross_entropy(full, target), list(params.values()))
    g_fast = torch.autograd.grad(F.cross_entropy(fast, target), list(params.values()))
    for name, a, b in zip(params, g_full, g_fast, strict=True):
        assert torch.allclose(a, b, **tolerance), name


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("subset", [False, True])
def test_folded_logits_and_gradients_equal_the_full_forward(shape, subset):
    p, overrides = SHAPES[shape]
    model = _model(p, overrides)
    tokens = _batch(p, n=p * p // 3 if subset else None)
    assert can_fold(model)
    full, fast = model.eq_logits(tokens), model.forward_last(tokens)
    assert (full - fast).abs().max() <= 1e-5
    target = torch.randint(0, p, (len(tokens),), generator=torch.Generator().manual_seed(1))
    _assert_same_gradients(model, full, fast, target, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("shape", ["debug", "four-heads-gelu"])
def test_folded_gradients_equal_the_full_forward_in_float64(shape):
    p, overrides = SHAPES[shape]
    model = _model(p, overrides, torch.float64)
    tokens = _batch(p, n=100)
    full, fast = model.eq_logits(tokens), model.forward_last(tokens)
    assert (full - fast).abs().max() <= 1e-12
    target = torch.randint(0, p, (len(tokens),), generator=torch.Generator().manual_seed(2))
    _assert_same_gradients(model, full, fast, target, atol=1e-14, rtol=1e-10)


def test_row_sums_match_autograd_gradcheck():
    # groups with repeats and gaps (token 1 never appears at key 0, token 4 never at key 1)
    tokens = torch.tensor([[0, 2], [3, 2], [0, 0], [5, 3], [2, 5], [0, 2]])
    vocab, n_head, n_key = 6, 3, 2
    group = tokens + torch.arange(n_key) * vocab  # [batch, key]: columns of T
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    weight = rand(len(tokens), n_key, n_head)
    T_a, c_a, T_b, c_b = rand(n_head, n_key * vocab, 5), rand(5), rand(n_head, n_key * vocab, 2), rand(2)

    def sums(weight, T_a, c_a, T_b, c_b):
        return tuple(_row_sums([(T_a, c_a), (T_b, c_b)], group, weight))

    assert torch.autograd.gradcheck(sums, (weight, T_a, c_a, T_b, c_b))
    # and the values are the sums they claim to be
    for (T, c), out in zip([(T_a, c_a), (T_b, c_b)], sums(weight, T_a, c_a, T_b, c_b), strict=True):
        expect = c + sum(weight[:, k, h, None] * T[h, group[:, k]] for h in range(n_head) for k in range(n_key))
        assert torch.allclose(out, expect)


def test_forward_last_folds_exactly_the_foldable_models(monkeypatch):
    calls = []
    real = folded.folded_logits

    def spy(model, a, b):
        calls.append(model.cfg.n_layers)
        return real(model, a, b)

    monkeypatch.setattr("groklab.models.transformer.folded_logits", spy)
    tokens = _batch(17, n=20)
    for overrides, folds in (([], True), (["model.n_layers=2"], False), (["model.layernorm=true"], False)):
        model = _model(17, overrides)
        calls.clear()
        out = model.forward_last(tokens)
        assert bool(calls) == folds == can_fold(model)
        assert (out - model.eq_logits(tokens)).abs().max() <= 1e-5


def test_folded_path_fires_the_neuron_hooks_and_honours_replacements():
    model = _model(17, [])
    tokens = _batch(17, n=50)
    pre_name, post_name = model.neuron_hooks
    seen = {}

    def save(x, hp):
        seen[hp.name] = x.detach().clone()

    with model.hooks([(pre_name, save), (post_name, save)]):
        model.forward_last(tokens)
    _, cache = model.run_with_cache(tokens)
    assert torch.allclose(seen[pre_name], cache[pre_name][:, -1], atol=1e-5)
    assert torch.allclose(seen[post_name], cache[post_name][:, -1], atol=1e-5)

    def kill_neuron_3(x, hp):
        x = x.clone()
        x[..., 3] = 0.0
        return x

    with model.hooks([(post_name, kill_neuron_3)]):
        fast = model.forward_last(tokens)
    full = model.run_with_hooks(tokens, fwd_hooks=[(post_name, kill_neuron_3)])[:, -1]
    assert (fast - full).abs().max() <= 1e-5
    assert (fast - model.forward_last(tokens)).abs().max() > 1e-4  # the hook did change something


@pytest.mark.parametrize("tokens", [[[4, 9, 17]], [[2, 2, 17]] * 5])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_folded_path_on_tiny_batches(tokens, dtype):
    model = _model(17, [])
    tokens = torch.tensor(tokens, dtype=dtype)
    assert (model.forward_last(tokens) - model.eq_logits(tokens)).abs().max() <= 1e-5
    target = torch.zeros(len(tokens), dtype=torch.long)
    _assert_same_gradients(model, model.eq_logits(tokens), model.forward_last(tokens), target, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("rate", [0.0, 0.4, 0.9])
@pytest.mark.parametrize("shape", ["debug", "four-heads-gelu"])
def test_attention_rate_folded_and_fast_paths_equal_the_full_forward(shape, rate):
    """pattern = alpha * softmax + (1 - alpha) on the visible keys: the folded path (1 layer), the
    `=`-only path (2 layers) and the full forward give the same logits and gradients."""
    p, overrides = SHAPES[shape]
    tokens = _batch(p, n=120)
    target = torch.randint(0, p, (len(tokens),), generator=torch.Generator().manual_seed(3))
    for layers in (1, 2):
        model = _model(p, [*overrides, f"model.attn_rate={rate}", f"model.n_layers={layers}"], torch.float64)
        assert model.fast_path == ("folded" if layers == 1 else "=-only")
        full, fast = model.eq_logits(tokens), model.forward_last(tokens)
        assert (full - fast).abs().max() <= 1e-12
        _assert_same_gradients(model, full, fast, target, atol=1e-14, rtol=1e-10)


def test_attention_rate_zero_weighs_every_visible_key_one():
    p, overrides = SHAPES["debug"]
    model = _model(p, [*overrides, "model.attn_rate=0.0"], torch.float64)
    _, cache = model.run_with_cache(_batch(p, n=5))
    pattern = cache["blocks.0.attn.hook_pattern"]  # [batch, head, query, key]
    assert torch.equal(pattern[0, 0], torch.ones(3, 3, dtype=torch.float64).tril())
