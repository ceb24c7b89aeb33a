import pytest
import torch

from groklab.config import load_config
from groklab.data import make_dataset
from groklab.models import build_model


def _model(overrides, p=17):
    cfg = load_config("debug", [f"task.p={p}", *overrides])
    return build_model(cfg.model, p, seed=3)


@pytest.mark.parametrize(
    "overrides",
    [["model.n_layers=1"], ["model.n_layers=2"], ["model.n_layers=2", "model.layernorm=true", "model.act=gelu"]],
)
def test_fast_path_equals_full_forward_values_and_gradients(overrides):
    model = _model(overrides)
    tokens = make_dataset("add", 17).tokens
    full, fast = model.eq_logits(tokens), model.forward_last(tokens)
    assert (full - fast).abs().max() <= 1e-5
    target = torch.randint(0, 17, (len(tokens),), generator=torch.Generator().manual_seed(0))
    params = list(model.parameters())
    g_full = torch.autograd.grad(torch.nn.functional.cross_entropy(full, target), params)
    g_fast = torch.autograd.grad(torch.nn.functional.cross_entropy(fast, target), params)
    for (name, _), a, b in zip(model.named_parameters(), g_full, g_fast, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4), name


def test_parameter_names_and_shapes_follow_transformerlens():
    m = build_model(load_config("nanda").model, 113)
    shapes = {k: tuple(v.shape) for k, v in m.named_parameters()}
    assert shapes == {
        "embed.W_E": (114, 128),
        "pos_embed.W_pos": (3, 128),
        "blocks.0.attn.W_Q": (4, 128, 32),
        "blocks.0.attn.W_K": (4, 128, 32),
        "blocks.0.attn.W_V": (4, 128, 32),
        "blocks.0.attn.W_O": (4, 32, 128),
        "blocks.0.mlp.W_in": (128, 512),
        "blocks.0.mlp.b_in": (512,),
        "blocks.0.mlp.W_out": (512, 128),
        "blocks.0.mlp.b_out": (128,),
        "unembed.W_U": (128, 113),
    }


def test_nanda_initialisation_scales():
    m = build_model(load_config("nanda").model, 113, seed=0)
    assert abs(m.embed.W_E.std().item() - 128**-0.5) < 0.01
    assert abs(m.unembed.W_U.std().item() - 114**-0.5) < 0.01
    assert m.blocks[0].mlp.b_in.abs().sum() == 0
    again = build_model(load_config("nanda").model, 113, seed=0)
    assert torch.equal(m.embed.W_E, again.embed.W_E)


def test_run_with_cache_has_every_hook_and_removes_hooks():
    model = _model(["model.n_layers=2"])
    tokens = make_dataset("add", 17).tokens[:10]
    logits, cache = model.run_with_cache(tokens)
    expected = {"hook_embed", "hook_pos_embed"}
    for i in range(2):
        expected |= {
            f"blocks.{i}.{h}"
            for h in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
        }
        expected |= {
            f"blocks.{i}.attn.{h}" for h in ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")
        }
        expected |= {f"blocks.{i}.mlp.{h}" for h in ("hook_pre", "hook_post")}
    assert expected <= set(cache)
    assert cache["blocks.0.attn.hook_pattern"].shape == (10, 2, 3, 3)
    # causal: position 0 attends only to itself
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"][:, :, 0, 0], torch.ones(10, 2))
    assert all(not hp._forward_hooks for hp in model.hook_dict.values())
    assert torch.equal(logits, model(tokens))


def test_run_with_hooks_replaces_activation():
    model = _model([])
    tokens = make_dataset("add", 17).tokens[:5]
    zeroed = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda x, hp: torch.zeros_like(x))])
    _, cache = model.run_with_cache(tokens)
    resid_mid = cache["blocks.0.hook_resid_mid"]
    assert torch.allclose(zeroed, model.unembed(resid_mid), atol=1e-6)


def test_mlp_model_size_and_hooks():
    cfg = load_config("nanda", ["model.arch=mlp"])
    m = build_model(cfg.model, 113)
    n = sum(p.numel() for p in m.parameters())
    assert 45_000 <= n <= 55_000
    tokens = make_dataset("add", 113).tokens[:4]
    logits, cache = m.run_with_cache(tokens)
    assert logits.shape == (4, 113) and m.neuron_hooks[1] in cache
    assert torch.equal(m.forward_last(tokens), logits)
