"""Fixed position encodings: sinusoidal (added to the embeddings) and rotary (applied to
queries and keys). Neither has parameters, so both extend to any length."""

from __future__ import annotations

import torch


def sinusoidal_table(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)); (length, dim)."""
    positions = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rates = 10000.0 ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(positions * rates)
    table[:, 1::2] = torch.cos(positions * rates)[:, : dim // 2]
    return table


def rotary_angles(length: int, head_size: int, theta: float, device: torch.device | None = None):
    """cos and sin of position × frequency, (length, head_size), laid out for :func:`rotate`."""
    frequencies = theta ** (-torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * frequencies
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i+d/2}) of the last dimension by its angle. Rotating a query at
    position m and a key at n makes their dot product depend on m - n only."""
    first, second = x.chunk(2, dim=-1)
    return (x * cos + torch.cat([-second, first], dim=-1) * sin).to(x.dtype)
