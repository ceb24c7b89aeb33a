"""Softmax collapse and zero loss on constructed logits whose float32 softmax saturates."""

import torch

from groklab.analysis.collapse import softmax_collapse


def test_saturated_rows_collapse_and_correct_ones_have_zero_loss():
    # margin 200 nats: exp(-200) underflows float32 to 0, so the softmax is exactly one-hot;
    # margin 10: exp(-10) * 4 is far above half an ulp of 1, so it is not
    logits = torch.zeros(4, 5, dtype=torch.float64)
    logits[0, 1] = 200.0  # collapsed onto the label 1: zero loss
    logits[1, 3] = 200.0  # collapsed onto class 3, label 0: loss 200, not zero
    logits[2, 2] = 10.0  # confident, not collapsed
    labels = torch.tensor([1, 0, 2, 4])  # row 3: uniform
    c = softmax_collapse(logits, labels)
    assert c.softmax_collapse == 2 / 4
    assert c.zero_loss_frac == 1 / 4


def test_collapse_threshold_is_float32_not_float64():
    # margin 20: exp(-20) * 2 = 4.1e-9 is below half an ulp of 1 in float32 (6e-8) but not in float64
    logits = torch.tensor([[20.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(torch.softmax(logits, -1)[0, 0]) < 1.0  # float64 still tells it apart
    c = softmax_collapse(logits, torch.tensor([0]))
    assert (c.softmax_collapse, c.zero_loss_frac) == (1.0, 1.0)
    # margin 15: 2 * exp(-15) = 6.1e-7 > 6e-8, not collapsed in float32
    c = softmax_collapse(torch.tensor([[15.0, 0.0, 0.0]]), torch.tensor([0]))
    assert (c.softmax_collapse, c.zero_loss_frac) == (0.0, 0.0)


def test_collapse_and_zero_loss_agree_on_correct_samples_with_many_tiny_classes():
    # 200 classes each exp(-16.5) = 6.8e-8 below the top: added one at a time to 1 each is lost
    # (half an ulp is 6e-8), summed first they are 1.4e-5; the measure takes the softmax kernel's
    # order, the one cross-entropy takes, so a correct sample is collapsed exactly when its loss is 0
    logits = torch.zeros(3, 201)
    logits[:, 0] = torch.tensor([16.5, 30.0, 10.0])
    c = softmax_collapse(logits, torch.zeros(3, dtype=torch.long))
    assert c.softmax_collapse == c.zero_loss_frac
    assert c.softmax_collapse >= 1 / 3  # margin 30: exp(-30) * 200 = 1.9e-11, collapsed in any order
