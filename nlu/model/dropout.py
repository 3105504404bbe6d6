"""Dropout with a mask that is cheap to draw on CPU.

torch's CPU dropout draws its mask with ``bernoulli_``, one 32-bit random number and a float
conversion per element, from one generator on one thread; a float uniform draw per element is
cheaper but still the same serial work. Dropout touches every hidden state and every attention
probability (about 18M elements per step of the 256-wide, 4-layer encoder at batch 32 × 128), and
under bf16 the matmuls around it get faster while the draws do not. Here one 64-bit
draw gives four 16-bit uniform integers, and an element is kept where its integer (read as
0 … 2¹⁶ - 1) is at least k: a Bernoulli(1 - k/2¹⁶) keep mask, stored already scaled so that
forward and backward are one multiplication each. The scale is 1 / (1 - p) as the input's dtype
stores it, and k is chosen for that scale, so the expectation is the input's (to 2⁻¹⁶) in every
dtype: in fp32, p = 0.1 drops 10.0006%; in bf16, whose nearest scale is 1.109375, it drops
9.86% (a bf16 scale with p kept at 10% would shrink every bf16 sub-layer output by 0.16% in
training but not in evaluation). On the 2-core host, one thread, a 2M-element mask costs 2.9 ms
this way against 6.5 ms with ``torch.rand(...) >= p``. Other devices keep torch's fused dropout
kernel, which this would only slow down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The scaled keep mask described above, in DTYPE: 0 where dropped, the scale where kept."""
    scale = torch.tensor(1.0 / (1.0 - p), dtype=dtype).item()
    dropped = round((1.0 - 1.0 / scale) * _LEVELS)
    count = shape.numel()
    draws = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    uniform = draws.view(torch.int16)[:count].view(shape)  # each value of [-2¹⁵, 2¹⁵) equally likely
    # bool → uint8 → dtype: the uint8 conversion is vectorised, bool's is not (8x slower on CPU)
    return uniform.ge(dropped - _LEVELS // 2).view(torch.uint8).to(dtype).mul_(scale)


class _UniformMaskDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = keep_mask(x.shape, p, x.dtype, x.device)
        ctx.save_for_backward(keep)
        return x * keep

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * keep, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    # Near p = 1 the 16-bit grid is too coarse for the expectation (and fp16 scales overflow).
    if x.device.type != "cpu" or p >= 0.999:
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
