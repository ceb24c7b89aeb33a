"""Clock or pizza (Zhong et al. 2023): gradient symmetricity and distance irrelevance.

- Gradient symmetricity: mean over 100 seeded random triples (a, b, c) of the cosine between
  d logit_c / d x_0 and d logit_c / d x_1, x_i the input of position i (the transformer's residual
  stream W_E[t] + W_pos[i] before the first block; the MLP model's embedding W_E[t]). A model whose
  logits see x_0 + x_1 (pizza-like, symmetric) gives 1; the clock multiplies them and gives less.
- Distance irrelevance: group the analysed pairs by d = phi_a(a) - phi_b(b) (mod n); DI = mean over
  groups of the std of the correct-class logit within the group, over its std over all pairs
  (population std). Clock near 1 (the correct logit does not care about a - b), pizza lower.

:func:`input_logits` is the model read from its position inputs; the AGOP (:mod:`.agop`) uses it too.
Triples are drawn from the analysed tokens (phi defined), c over all classes, with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from groklab.analysis.basis import Basis
from groklab.data import Dataset
from groklab.models import MLPModel, Transformer, eval_mode

__all__ = ["InputLogits", "distance_irrelevance", "gradient_symmetricity", "input_logits", "model_clock_pizza"]

N_TRIPLES = 100
TRIPLE_SEED = 0

# (x0 [B, d], x1 [B, d]) -> logits [B, p]; plus the token table x_i = table[t] + offset[i]
LogitFn = Callable[[Tensor, Tensor], Tensor]


class InputLogits:
    """A model as a function of its position inputs: ``fn(x0, x1) -> logits [B, p]`` with
    ``x_i = W_E[t_i] + offsets[i]`` (``W_E`` the token rows [p, d])."""

    def __init__(self, fn: LogitFn, W_E: Tensor, offsets: tuple[Tensor, Tensor]) -> None:
        self.fn, self.W_E, self.offsets = fn, W_E, offsets

    def inputs(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        return self.W_E[a] + self.offsets[0], self.W_E[b] + self.offsets[1]


def input_logits(model: Transformer | MLPModel) -> InputLogits:
    """The logits at `=` of ``model`` as a function of the inputs of positions 0 and 1."""
    if isinstance(model, MLPModel):
        zero = torch.zeros_like(model.embed.W_E[0])

        def mlp_fn(x0: Tensor, x1: Tensor) -> Tensor:
            x = model.hook_embed(torch.cat([x0, x1], -1))
            for layer in model.blocks:
                x = layer.mlp(x)  # type: ignore[union-attr,operator]
            return x @ model.unembed.W_U + model.unembed.b_U

        return InputLogits(mlp_fn, model.embed.W_E.detach(), (zero, zero))
    W_E, W_pos = model.embed.W_E.detach(), model.pos_embed.W_pos.detach()
    x2_in = W_E[model.p] + W_pos[2]  # the `=` position's input

    def tf_fn(x0: Tensor, x1: Tensor) -> Tensor:
        """The `=` logits from the inputs of positions 0, 1 (causal: position j sees keys <= j),
        computing only what they need, as ``forward_last`` does."""
        x2 = x2_in.expand_as(x0)
        blocks = model.block_list
        for i, block in enumerate(blocks):
            (k0, v0), (k1, v1), (k2, v2) = block.kv(x0), block.kv(x1), block.kv(x2)
            q2 = block.q(x2)
            out2 = block.finish(x2 + block.attn.mix([_dot(k0, q2), _dot(k1, q2), _dot(k2, q2)], [v0, v1, v2]))
            if i < len(blocks) - 1:
                q0, q1 = block.q(x0), block.q(x1)
                x1 = block.finish(x1 + block.attn.mix([_dot(k0, q1), _dot(k1, q1)], [v0, v1]))
                x0 = block.finish(x0 + block.attn.mix([_dot(k0, q0)], [v0]))
            x2 = out2
        return model.unembed(model.ln_final(x2))

    return InputLogits(tf_fn, W_E[: model.p], (W_pos[0], W_pos[1]))


def _dot(k: Tensor, q: Tensor) -> Tensor:  # [B, head, d_head] x [B, head, d_head] -> [B, head]
    return (k * q).sum(-1)


def gradient_symmetricity(fn: InputLogits, a: Tensor, b: Tensor, c: Tensor) -> float:
    """Mean over the triples ``(a, b, c)`` [T] of cos(d logit_c / d x_0, d logit_c / d x_1)."""
    x0, x1 = (x.detach().clone().requires_grad_(True) for x in fn.inputs(a, b))
    with torch.enable_grad():  # callers may hold no_grad (eval_mode)
        picked = fn.fn(x0, x1).gather(1, c[:, None]).sum()
    g0, g1 = torch.autograd.grad(picked, (x0, x1))
    return float(torch.nn.functional.cosine_similarity(g0, g1, dim=-1).mean())


def random_triples(basis: Basis, n_classes: int, n: int = N_TRIPLES, seed: int = TRIPLE_SEED) -> tuple[Tensor, ...]:
    """``n`` seeded triples: a and b over the analysed tokens (phi defined), c over all classes."""
    assert basis.map is not None
    g = torch.Generator().manual_seed(seed)
    a_dom = torch.from_numpy(basis.map.phi_a >= 0).nonzero().flatten()
    b_dom = torch.from_numpy(basis.map.phi_b >= 0).nonzero().flatten()
    a = a_dom[torch.randint(len(a_dom), (n,), generator=g)]
    b = b_dom[torch.randint(len(b_dom), (n,), generator=g)]
    return a, b, torch.randint(n_classes, (n,), generator=g)


def distance_irrelevance(correct_logit: Tensor, basis: Basis) -> float:
    """``correct_logit [N]`` over the analysed pairs (basis order): mean within-group std over
    groups d = phi_a - phi_b (mod n), divided by the std over all pairs (population stds)."""
    z = correct_logit.to(torch.float64)
    d = (basis.ia - basis.ib) % basis.n
    total = z.std(correction=0)
    stds = [z[d == g].std(correction=0) for g in torch.unique(d)]
    return float(torch.stack(stds).mean() / total)


def model_clock_pizza(
    model: Transformer | MLPModel, ds: Dataset, basis: Basis
) -> tuple[float | None, float | None, str | None]:
    """(gradient symmetricity, distance irrelevance, why None) of one model state."""
    if basis.map is None:
        return None, None, basis.reason
    with eval_mode(model):
        a, b, c = random_triples(basis, model.p)
        gs = gradient_symmetricity(input_logits(model), a, b, c)
        with torch.no_grad():
            tokens, labels = ds.tokens[basis.rows], ds.labels[basis.rows]
            correct = model.forward_last(tokens).gather(1, labels[:, None])[:, 0]
    return gs, distance_irrelevance(correct, basis), None
