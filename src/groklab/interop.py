"""TransformerLens interop: groklab's transformer <-> a ``HookedTransformer`` with equal logits.

Conventions, both directions (needs the ``tl`` extra, transformer-lens 3.x; nothing is downloaded):

- inputs are ``[a, b, =]`` with ``=`` the token p, vocabulary p+1 in; logits are read at the ``=``
  position (the last of the three), first p classes: ``hooked(tokens)[:, -1, :p]`` equals
  ``model.forward_last(tokens)`` (<= 1e-5);
- parameter names are the same on both sides (DESIGN section 4), so conversion copies by name;
- groklab has no attention biases and no unembedding bias, TransformerLens always has them
  (``b_Q, b_K, b_V, b_O, b_U``): they are zero in a converted groklab model and must be zero in a
  HookedTransformer converted to groklab (the TransformerLens grokking demo freezes its biases at zero);
- LayerNorm (eps 1e-5, learned ``w`` and ``b``) sits before attention, before the MLP and before
  the unembedding: TransformerLens ``normalization_type="LN"``; ``"LNPre"`` (folded, no weights)
  is read as LN with ``w = 1, b = 0``;
- groklab's ``W_pos`` has 3 rows; a HookedTransformer's ``n_ctx`` may be larger (its first 3 rows are
  kept); its ``d_vocab_out`` may be p or p+1 (the ``=`` class, dropped);
- the result has the source model's dtype, device and train/eval mode.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from groklab.config import ACTS, ModelConfig
from groklab.models import build_model
from groklab.models.transformer import N_CTX, Transformer

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

__all__ = ["InteropError", "from_hooked_transformer", "to_hooked_transformer"]

INSTALL_HINT = "TransformerLens interop needs transformer-lens 3.x (with HookedTransformer): pip install 'groklab[tl]'"

# HookedTransformerConfig fields that must keep their default: each changes the computation in a way
# groklab's transformer has no counterpart for.
PLAIN_FIELDS = (
    "attention_dir",
    "attn_only",
    "parallel_attn_mlp",
    "gated_mlp",
    "positional_embedding_type",
    "use_attn_scale",
    "scale_attn_by_inverse_layer_idx",
    "use_local_attn",
    "use_qk_norm",
    "clip_qkv",
    "use_logn_attn",
    "attn_scores_soft_cap",
    "output_logits_soft_cap",
    "use_attention_sinks",
    "n_key_value_heads",
    "num_experts",
    "final_rms",
    "post_embedding_ln",
    "use_normalization_before_and_after",
    "original_architecture",
)


class InteropError(ValueError):
    """A model the other library cannot express; the message is one line naming the problem."""


def _transformer_lens() -> tuple[Any, Any]:
    """``(HookedTransformer, HookedTransformerConfig)``, or an ImportError saying how to install them."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError as e:
        raise ImportError(INSTALL_HINT, name="transformer_lens") from e
    return HookedTransformer, HookedTransformerConfig


def _expressible(model: nn.Module) -> Transformer:
    """``model`` as a groklab Transformer TransformerLens can express, else :class:`InteropError`."""
    if not isinstance(model, Transformer):
        arch = getattr(getattr(model, "cfg", None), "arch", type(model).__name__)
        raise InteropError(f"only groklab's transformer has a HookedTransformer form, not arch {arch!r}")
    rate = getattr(model.cfg, "attn_rate", 1.0)
    if rate != 1.0:
        raise InteropError(f"model.attn_rate={rate}: TransformerLens attention is a plain softmax (needs 1.0)")
    return model


def _hooked_config(model: Transformer) -> dict[str, Any]:
    """HookedTransformerConfig keyword arguments for ``model`` (weights are copied, not initialised)."""
    c, W_E = model.cfg, model.embed.W_E
    eps = model.ln_final.eps if c.layernorm else 1e-5
    return dict(
        n_layers=c.n_layers,
        d_model=c.d_model,
        n_heads=c.n_heads,
        d_head=c.d_head,
        d_mlp=c.d_mlp,
        act_fn=c.act,
        normalization_type="LN" if c.layernorm else None,
        eps=eps,
        d_vocab=model.p + 1,
        d_vocab_out=model.p,
        n_ctx=N_CTX,
        init_weights=False,  # leaves torch's global RNG alone; every parameter is set below
        device=str(W_E.device),
        dtype=W_E.dtype,
    )


def to_hooked_transformer(model: nn.Module) -> HookedTransformer:
    """A HookedTransformer with ``model``'s weights: ``hooked(tokens)[:, -1]`` equals
    ``model.forward_last(tokens)`` (``[batch, p]``; TransformerLens ``d_vocab_out`` is p).

    Refused with :class:`InteropError`: the MLP model, and ``model.attn_rate != 1``. Attention and
    unembedding biases, which groklab lacks, are zero."""
    HookedTransformer, HookedTransformerConfig = _transformer_lens()
    tf = _expressible(model)
    with warnings.catch_warnings():  # 3.x suggests its TransformerBridge, which wraps HF models only
        warnings.filterwarnings("ignore", "HookedTransformer is deprecated", DeprecationWarning)
        hooked = HookedTransformer(HookedTransformerConfig(**_hooked_config(tf)))
    ours = dict(tf.named_parameters())
    with torch.no_grad():
        for name, param in hooked.named_parameters():
            src = ours.pop(name, None)
            if src is None:  # a bias groklab does not have
                param.zero_()
            else:
                assert src.shape == param.shape, f"{name}: {tuple(src.shape)} vs {tuple(param.shape)}"
                param.copy_(src)
    assert not ours, f"parameters with no TransformerLens counterpart: {sorted(ours)}"
    return hooked.train(tf.training)


def _check_layout(c: Any, p: int | None) -> int:
    """The modulus of a hooked config in the demo layout, else :class:`InteropError`."""
    p = c.d_vocab - 1 if p is None else p
    if p < 2 or c.d_vocab != p + 1:
        raise InteropError(f"d_vocab={c.d_vocab}: expected p+1 = {p + 1} (tokens 0..p-1 and `=` = p)")
    if c.d_vocab_out not in (p, p + 1):
        raise InteropError(f"d_vocab_out={c.d_vocab_out}: expected p = {p} or p+1 = {p + 1}")
    if c.n_ctx < N_CTX:
        raise InteropError(f"n_ctx={c.n_ctx}: inputs [a, b, =] need at least {N_CTX} positions")
    if c.act_fn not in ACTS:
        raise InteropError(f"act_fn={c.act_fn!r}: groklab has {', '.join(ACTS)}")
    if c.normalization_type not in (None, "LN", "LNPre"):
        raise InteropError(f"normalization_type={c.normalization_type!r}: groklab has None, LN (and reads LNPre)")
    return p


def _check_plain(c: Any) -> None:
    """Every computation-changing switch at its default, attention scaled by 1/sqrt(d_head)."""
    defaults = {f.name: f.default for f in fields(c)}
    for name in PLAIN_FIELDS:
        value = getattr(c, name, defaults.get(name))
        if name in defaults and value != defaults[name]:
            raise InteropError(f"{name}={value!r}: groklab's transformer has no counterpart (needs {defaults[name]!r})")
    if not math.isclose(c.attn_scale, math.sqrt(c.d_head), rel_tol=1e-9):
        raise InteropError(f"attn_scale={c.attn_scale}: groklab divides scores by sqrt(d_head) = {math.sqrt(c.d_head)}")


def _model_config(c: Any) -> ModelConfig:
    return ModelConfig(
        arch="transformer",
        n_layers=c.n_layers,
        d_model=c.d_model,
        n_heads=c.n_heads,
        d_head=c.d_head,
        d_mlp=c.d_mlp,
        act=c.act_fn,
        layernorm=c.normalization_type is not None,
    )


def _fit(src: Tensor, shape: torch.Size) -> Tensor:
    """The leading block of ``src`` of ``shape``: W_pos's first 3 rows, W_U's first p columns."""
    return src[tuple(slice(0, n) for n in shape)]


def from_hooked_transformer(hooked: HookedTransformer, p: int | None = None) -> Transformer:
    """A groklab Transformer whose ``forward_last(tokens)`` equals ``hooked(tokens)[:, -1, :p]``.

    ``hooked`` is in the layout of the TransformerLens grokking demo (see the module docstring);
    p defaults to ``d_vocab - 1``. Refused with :class:`InteropError`, naming the field: another
    vocabulary, ``n_ctx < 3``, ``attn_only``, an activation other than relu/gelu, RMS norms, another
    LayerNorm eps, non-standard positions or attention, non-zero attention or unembedding biases."""
    c = hooked.cfg
    p = _check_layout(c, p)
    _check_plain(c)
    W_E = hooked.embed.W_E
    model = build_model(_model_config(c), p, seed=0).to(device=W_E.device, dtype=W_E.dtype)  # seed: RNG untouched
    assert isinstance(model, Transformer)
    if c.normalization_type is not None and c.eps != model.ln_final.eps:
        raise InteropError(f"eps={c.eps}: groklab's LayerNorm has eps {model.ln_final.eps}")
    theirs = dict(hooked.named_parameters())
    with torch.no_grad():
        for name, param in model.named_parameters():
            src = theirs.pop(name, None)
            if src is None:  # LNPre: no weights, groklab's LayerNorm keeps w = 1, b = 0
                assert c.normalization_type == "LNPre" and name.split(".")[-2] in ("ln1", "ln2", "ln_final"), name
            else:
                param.copy_(_fit(src, param.shape))
    for name, extra in theirs.items():  # biases groklab does not have (b_U: only the first p classes)
        if bool((extra[:p] if name == "unembed.b_U" else extra).any()):
            raise InteropError(f"{name} is non-zero: groklab's transformer has no such bias")
    return model.train(hooked.training)
