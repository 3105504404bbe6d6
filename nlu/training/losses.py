"""Losses for imbalanced label sets: class weights, focal loss and logit adjustment.

All losses take the arguments of ``nn.CrossEntropyLoss``: logits ``(N, C)`` or
``(N, C, d1, ...)`` and integer targets ``(N)`` or ``(N, d1, ...)``, with ``ignore_index``
marking positions (padding, sub-word continuations) that do not count.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nlu.errors import ConfigError, DataError

LossKind = Literal["ce", "weighted_ce", "focal"]
Reduction = Literal["mean", "sum", "none"]


def class_weights(labels: list[int] | np.ndarray, num_classes: int, ignore_index: int = -100) -> torch.Tensor:
    """``n_samples / (num_classes * count)`` per class (scikit-learn's "balanced"), as float32.

    Positions equal to ``ignore_index`` are dropped first, so flattened token labels can be
    passed as they are. A class that never occurs would get an infinite weight, so that is an
    error rather than something to clip silently.
    """
    values = np.asarray(labels).reshape(-1)
    values = values[values != ignore_index]
    out_of_range = values[(values < 0) | (values >= num_classes)]
    if out_of_range.size:
        raise DataError(f"label ids must be in [0, {num_classes}), found {sorted(set(out_of_range.tolist()))}")
    classes = np.arange(num_classes)
    absent = np.setdiff1d(classes, values)
    if absent.size:
        raise DataError(f"cannot weight classes that never occur in the training labels: {absent.tolist()}")
    # scikit-learn's compute_class_weight("balanced") to the last bit, without importing it (1.4 s)
    weights = len(values) / (num_classes * np.bincount(values, minlength=num_classes).astype(np.float64))
    return torch.tensor(weights, dtype=torch.float32)


class FocalLoss(nn.Module):
    """Multiclass focal loss (Lin et al. 2017): ``-alpha_t * (1 - p_t)**gamma * log p_t``.

    ``alpha_t`` is ``weight[target]`` (1 without weights). The ``mean`` reduction divides by
    the sum of ``alpha_t`` over non-ignored positions - not by their number - exactly as
    ``F.cross_entropy`` does, so ``gamma=0`` reproduces cross-entropy, weighted or not, and
    switching between the two does not rescale the learning rate. As with cross-entropy, a
    batch in which every position is ignored gives NaN under ``mean``.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: Reduction = "mean",
    ):
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"focal loss gamma must be >= 0, got {gamma}")
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.register_buffer("weight", weight)  # a buffer follows .to(device) and is saved with the module

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        safe_target = target.masked_fill(~valid, 0).unsqueeze(1)
        log_p = F.log_softmax(logits, dim=1).gather(1, safe_target).squeeze(1)
        # 1 - exp(log p) via expm1 keeps precision when p is close to 1. The floor only acts
        # when p saturates to exactly 1: there pow's derivative is infinite for gamma < 1 and
        # would turn the (zero) gradient into NaN.
        modulating = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny).pow(self.gamma)
        alpha = torch.ones_like(log_p) if self.weight is None else self.weight[safe_target.squeeze(1)]
        alpha = alpha * valid
        loss = -alpha * modulating * log_p
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / alpha.sum()


def logit_adjustment(class_priors: list[float] | np.ndarray | torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """``tau * log(prior)`` per class (Menon et al. 2021, "Long-tail learning via logit adjustment").

    Sign convention: ADD it to the logits inside the training loss (``loss(logits + adj, y)``)
    so the model learns balanced scores; or train normally and SUBTRACT it at prediction time
    (``argmax(logits - adj)``). Never both. Priors may be given as counts: they are normalised,
    and a constant shift would not change the softmax anyway.
    """
    priors = torch.as_tensor(class_priors, dtype=torch.float32)
    if priors.ndim != 1 or not bool((priors > 0).all()):
        raise DataError(f"class priors must be a 1-D list of positive numbers, got {priors.tolist()}")
    return tau * torch.log(priors / priors.sum())


def build_loss(
    kind: LossKind,
    *,
    weight: torch.Tensor | None = None,
    gamma: float = 2.0,
    ignore_index: int = -100,
) -> nn.Module:
    """The training loss named in the config; ``weight`` usually comes from :func:`class_weights`.

    ``weighted_ce`` requires ``weight``, ``focal`` takes it optionally, and ``ce`` refuses it so
    a configured weighting is never silently dropped.
    """
    if kind == "ce":
        if weight is not None:
            raise ConfigError("loss 'ce' takes no class weights; use 'weighted_ce'")
        return nn.CrossEntropyLoss(ignore_index=ignore_index)
    if kind == "weighted_ce":
        if weight is None:
            raise ConfigError("loss 'weighted_ce' needs class weights")
        return nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)
    if kind == "focal":
        return FocalLoss(gamma=gamma, weight=weight, ignore_index=ignore_index)
    raise ConfigError(f"loss must be 'ce', 'weighted_ce' or 'focal', got {kind!r}")
