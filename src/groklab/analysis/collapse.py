"""Softmax collapse (Prieto et al. 2025): where float32 can no longer tell the softmax from one-hot.

A sample's float32 softmax has collapsed when ``sum_j exp(z_j - max z) == 1`` in float32: every
other class underflows below half an ulp of 1, so the gradient of its cross-entropy is exactly
zero for a correct prediction. Its zero-loss counterpart is a float32 cross-entropy of exactly 0;
the two differ only on misclassified samples (collapsed onto a wrong class: loss > 0). Both are
measured in float32 whatever ``train.loss_dtype`` trains with (DESIGN section 6).

The float32 sum depends on the order of its terms (many classes each below half an ulp of 1 are
lost one at a time but not when summed pairwise first), so the sum is the one PyTorch's softmax
kernel takes: a sample has collapsed when ``softmax(z)`` in float32 gives its top class exactly 1.
That kernel's sum is the one its cross-entropy takes, so on correctly classified samples the two
fractions agree (a separate ``exp(...).sum()`` reduces in another order and disagrees on a few
percent of the canonical run's samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Collapse", "softmax_collapse"]


@dataclass(frozen=True)
class Collapse:
    softmax_collapse: float  # fraction of samples whose float32 softmax is exactly one-hot
    zero_loss_frac: float  # fraction whose float32 cross-entropy is exactly 0


def softmax_collapse(logits: Tensor, labels: Tensor) -> Collapse:
    """Both fractions over the rows of ``logits [n, classes]`` with ``labels [n]``, in float32."""
    z = logits.detach().to(torch.float32)
    top = torch.softmax(z, -1).max(-1).values  # 1 / (the kernel's sum of exp(z_j - max z))
    loss = F.cross_entropy(z, labels, reduction="none")
    n = max(len(labels), 1)
    return Collapse(float((top == 1.0).sum()) / n, float((loss == 0.0).sum()) / n)
