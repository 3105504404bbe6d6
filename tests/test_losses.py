"""Class weights, focal loss, logit adjustment and the loss factory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nlu.errors import ConfigError, DataError
from nlu.training.losses import FocalLoss, build_loss, class_weights, logit_adjustment


def test_class_weights_are_balanced():
    labels = [0, 0, 0, 1, 2, 2, -100, -100]  # ignored positions are dropped: n = 6
    weights = class_weights(labels, 3)
    # n_samples / (n_classes * count): 6/(3*3), 6/(3*1), 6/(3*2)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 2.0, 1.0]))
    assert weights.dtype == torch.float32
    torch.testing.assert_close(class_weights(np.array([[0, 1], [1, 1]]), 2), torch.tensor([2.0, 2 / 3]))
    from sklearn.utils.class_weight import compute_class_weight

    many = np.random.default_rng(0).integers(0, 7, size=1000)
    expected = compute_class_weight("balanced", classes=np.arange(7), y=many).astype(np.float32)
    assert class_weights(many, 7).numpy().tobytes() == expected.tobytes()  # scikit-learn's to the bit


def test_class_weights_reject_absent_and_out_of_range_classes():
    with pytest.raises(DataError, match=r"never occur in the training labels: \[1, 3\]"):
        class_weights([0, 2, 2], 4)
    with pytest.raises(DataError, match=r"\[0, 2\), found \[5\]"):
        class_weights([0, 1, 5], 2)


def test_focal_loss_hand_computed():
    # Example 1: logits (ln 3, 0) -> p = (3/4, 1/4), target 0: p_t = 3/4.
    # Example 2: logits (0, 0)    -> p = (1/2, 1/2), target 1: p_t = 1/2.
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    fl1 = (1 / 4) ** 2 * math.log(4 / 3)  # -(1 - 3/4)^2 log(3/4)
    fl2 = (1 / 2) ** 2 * math.log(2)  # -(1 - 1/2)^2 log(1/2)
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx((fl1 + fl2) / 2)
    assert FocalLoss(gamma=2.0, reduction="sum")(logits, target).item() == pytest.approx(fl1 + fl2)
    per_example = FocalLoss(gamma=2.0, reduction="none")(logits, target)
    np.testing.assert_allclose(per_example.numpy(), [fl1, fl2])
    # alpha = weight[target] = (2, 1); the mean divides by the weight sum 2 + 1.
    weighted = FocalLoss(gamma=2.0, weight=torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert weighted(logits, target).item() == pytest.approx((2 * fl1 + 1 * fl2) / 3)


@pytest.mark.parametrize("with_weight", [False, True])
def test_focal_loss_with_gamma_zero_is_cross_entropy(with_weight):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 7, generator=generator)  # (N, C, T) like token classification
    target = torch.randint(0, 5, (4, 7), generator=generator)
    target[0, :3] = -100
    target[2, 5] = -100
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.25]) if with_weight else None
    for reduction in ("mean", "sum", "none"):
        ours = FocalLoss(gamma=0.0, weight=weight, reduction=reduction)(logits, target)
        reference = F.cross_entropy(logits, target, weight=weight, reduction=reduction)
        torch.testing.assert_close(ours, reference)
    flat = FocalLoss(gamma=0.0, weight=weight)(logits.transpose(1, 2).reshape(-1, 5), target.reshape(-1))
    torch.testing.assert_close(flat, F.cross_entropy(logits, target, weight=weight))


def test_focal_loss_gradient_is_finite_when_saturated():
    for gamma in (0.0, 0.5, 2.0):
        logits = torch.tensor([[200.0, 0.0, 0.0], [0.1, 0.2, 0.3]], requires_grad=True)
        FocalLoss(gamma=gamma)(logits, torch.tensor([0, 2])).backward()
        assert torch.isfinite(logits.grad).all()


def test_focal_loss_weight_moves_with_module():
    loss = FocalLoss(weight=torch.tensor([1.0, 2.0]))
    assert "weight" in loss.state_dict()
    assert loss.double().weight.dtype == torch.float64
    with pytest.raises(ConfigError, match="gamma"):
        FocalLoss(gamma=-1.0)


def test_logit_adjustment_sign_and_normalisation():
    adjustment = logit_adjustment([0.5, 0.25, 0.25], tau=1.0)
    torch.testing.assert_close(adjustment, torch.log(torch.tensor([0.5, 0.25, 0.25])))
    torch.testing.assert_close(logit_adjustment([2, 1, 1], tau=0.5), 0.5 * adjustment)  # counts work too
    # Post-hoc: subtracting the adjustment from tied logits favours the rarer classes.
    assert (torch.zeros(3) - adjustment).argmax().item() in (1, 2)
    with pytest.raises(DataError, match="positive"):
        logit_adjustment([0.5, 0.0, 0.5])


def test_build_loss():
    weight = torch.tensor([1.0, 2.0])
    assert type(build_loss("ce")) is nn.CrossEntropyLoss
    weighted = build_loss("weighted_ce", weight=weight, ignore_index=-1)
    assert torch.equal(weighted.weight, weight) and weighted.ignore_index == -1
    focal = build_loss("focal", gamma=1.5, weight=weight)
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.5
    with pytest.raises(ConfigError, match="needs class weights"):
        build_loss("weighted_ce")
    with pytest.raises(ConfigError, match="takes no class weights"):
        build_loss("ce", weight=weight)
    with pytest.raises(ConfigError, match="'hinge'"):
        build_loss("hinge")
