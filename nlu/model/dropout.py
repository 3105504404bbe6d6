"""Dropout with a mask that is cheap to draw on CPU.

torch's CPU dropout draws its mask with ``bernoulli_``, which costs about twice as much per
element as uniform draws; dropout touches every hidden state and every attention probability,
so in a fine-tuning step of a small encoder the difference is several percent of the step.
Here the mask is ``uniform >= p``, the same Bernoulli(1 - p) keep mask, stored already scaled
by 1 / (1 - p) so that forward and backward are one multiplication each. Other devices keep
torch's fused dropout kernel, which this would only slow down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _UniformMaskDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        # The draw is in fp32 whatever x's dtype: p = 0.1 rounded to bf16 would drop 0.1001.
        keep = torch.rand(x.shape, device=x.device).ge_(p).to(x.dtype).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(keep)
        return x * keep

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * keep, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    return _UniformMaskDropout.apply(x, p)


class Dropout(nn.Module):
    """``nn.Dropout`` with :func:`dropout`'s mask."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
