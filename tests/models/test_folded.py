"""The folded `=` path of 1-layer transformers without LayerNorm against the full hooked forward."""

import pytest
import torch
import torch.nn.functional as F

from groklab.config import load_config
from groklab.data import make_dataset
from groklab.models import build_model, folded
from groklab.models.folded import _ReluReadout, _RowSums, can_fold

SHAPES = {  # p, then model overrides on the debug preset (d_model 32, 2 heads of 16, d_mlp 64, relu)
    "debug": (17, []),
    "four-heads-gelu": (23, ["model.n_heads=4", "model.d_head=8", "model.d_mlp=48", "model.act=gelu"]),
    "one-head-narrow": (7, ["model.d_model=16", "model.n_heads=1", "model.d_mlp=24"]),
    "wide-odd": (31, ["model.d_model=48", "model.n_heads=3", "model.d_head=20", "model.d_mlp=100", "model.act=gelu"]),
    "p13-four-narrow-heads": (13, ["model.d_model=16", "model.n_heads=4", "model.d_head=4", "model.d_mlp=36"]),
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


def test_row_sums_and_readout_match_autograd_gradcheck():
    # two members; groups with repeats and gaps (token 1 never appears at key 0, token 4 never at key 1)
    tokens = torch.tensor(
        [[[0, 2], [3, 2], [0, 0], [5, 3], [2, 5], [0, 2]], [[1, 1], [1, 4], [4, 0], [2, 2], [5, 5], [3, 1]]]
    )
    vocab, n_head, n_key, n_member, n_cols, d_mlp = 6, 3, 2, 2, 8, 5
    n_groups = n_key * vocab
    group = tokens + torch.arange(n_key) * vocab  # [member, batch, key]: each member's columns of T
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return (torch.rand(*shape, generator=gen, dtype=torch.float64) - 0.3).requires_grad_()

    weight = rand(n_member * tokens.shape[1], n_key, n_head)
    table, c = rand(n_member * n_head * n_groups, n_cols), rand(n_member, n_cols)  # each member's T, its c
    W_L = rand(n_member, d_mlp, n_cols - d_mlp - 1)  # the last column: padding

    def sums(weight, table, c):
        return _RowSums.apply(table, c, weight, group)

    def readout(weight, table, c, W_L):
        return _ReluReadout.apply(table, c, weight, group, W_L)

    assert torch.autograd.gradcheck(sums, (weight, table, c))
    assert torch.autograd.gradcheck(readout, (weight, table, c, W_L))
    # and the values are the sums they claim to be
    T = table.view(n_member, n_head, n_groups, n_cols)
    for m in range(n_member):
        e = slice(m * tokens.shape[1], (m + 1) * tokens.shape[1])
        terms = [weight[e, k, h, None] * T[m, h, group[m, :, k]] for h in range(n_head) for k in range(n_key)]
        expect = c[m] + sum(terms)
        assert torch.allclose(sums(weight, table, c)[e], expect)
        relu_readout = expect[:, d_mlp:-1] + expect[:, :d_mlp].relu() @ W_L[m]
        assert torch.allclose(readout(weight, table, c, W_L)[m], relu_readout)


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


STACKED = {  # p, then model overrides on the debug preset, as SHAPES
    "relu": (13, []),
    "narrow-four-heads": (7, ["model.d_model=16", "model.n_heads=4", "model.d_head=4", "model.d_mlp=20"]),
    "gelu-rate": (23, ["model.n_heads=1", "model.d_head=24", "model.act=gelu", "model.attn_rate=0.6"]),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", STACKED)
def test_stacked_members_equal_their_single_models(shape, dtype):
    """Member m of the stacked path is model m: its logits on its own inputs and the gradient of
    its slice of every stacked parameter (the members' inputs differ, and member 2 leaves many
    table rows unused). Gradients of logits.sum() reach ~1e3, so in float32 their tolerance is
    relative to the largest entry (float rounding of sums in a different order)."""
    p, overrides = STACKED[shape]
    cfg = load_config("debug", [f"task.p={p}", "model.n_layers=1", *overrides]).model
    models = [build_model(cfg, p, seed=s).to(dtype) for s in (0, 1, 2)]
    tokens = [_batch(p, n=p * p // 2, seed=s) for s in (0, 1, 2)]
    tokens[2][:, 1] = tokens[2][:, 0]  # member 2 sees only a = b
    params, _ = torch.func.stack_module_state(models)
    assert set(params) == {name for name, _ in models[0].named_parameters()}
    a, b = torch.stack([t[:, 0] for t in tokens]), torch.stack([t[:, 1] for t in tokens])
    stacked = folded.folded_logits_stacked(params, cfg, p, a, b)
    assert stacked.shape == (3, p * p // 2, p)
    grads = torch.autograd.grad(stacked.sum(), list(params.values()))
    for m, (model, x) in enumerate(zip(models, tokens, strict=True)):
        single = model.forward_last(x)
        assert (stacked[m] - single).abs().max() <= 1e-5
        assert (stacked[m] - model.eq_logits(x)).abs().max() <= 1e-5
        single_grads = torch.autograd.grad(single.sum(), list(model.parameters()))
        for name, g_stacked, g_single in zip(params, grads, single_grads, strict=True):
            atol = 1e-5 if dtype == torch.float64 else 1e-6 * float(g_single.abs().max())
            assert torch.allclose(g_stacked[m], g_single, atol=atol, rtol=1e-5), (m, name)


def test_stacked_path_refuses_what_does_not_fold():
    cfg = load_config("debug", ["task.p=7", "model.n_layers=2"]).model
    params, _ = torch.func.stack_module_state([build_model(cfg, 7, seed=0)])
    a = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="n_layers"):
        folded.folded_logits_stacked(params, cfg, 7, a, a)


def test_hooks_registered_on_the_point_itself_fire_on_the_folded_path():
    """Without hooks ReLU and readout are fused; a hook registered the torch way is still seen."""
    model = _model(17, [])
    tokens = _batch(17, n=30)
    seen = []
    handle = model.block_list[0].mlp.hook_post.register_forward_hook(lambda m, i, out: seen.append(out.shape))
    try:
        model.forward_last(tokens)
    finally:
        handle.remove()
    assert seen == [(30, model.cfg.d_mlp)]
    assert not model.block_list[0].mlp.hook_post.hooked


@pytest.mark.parametrize("rate", [1.0, 0.3])
def test_fused_relu_readout_equals_the_hooked_path(rate):
    """Without hooks, sums, ReLU and readout run fused; a hook that changes nothing takes the unfused
    path. Both give the same logits and gradients (float64, to rounding)."""
    model = _model(13, ["model.d_mlp=40", f"model.attn_rate={rate}"], torch.float64)
    tokens = _batch(13, n=90, seed=4)
    target = torch.randint(0, 13, (len(tokens),), generator=torch.Generator().manual_seed(4))
    fused = model.forward_last(tokens)
    with model.hooks([(model.neuron_hooks[1], lambda x, hp: None)]):
        hooked = model.forward_last(tokens)
    assert (fused - hooked).abs().max() <= 1e-12
    _assert_same_gradients(model, hooked, fused, target, atol=1e-14, rtol=1e-10)
