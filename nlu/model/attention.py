"""Multi-head self-attention.

Queries, keys and values come from one fused projection (one matmul instead of three);
the checkpoint interop splits and joins it so weights stay compatible with BERT's separate
``query``/``key``/``value`` layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nlu.config import EncoderConfig
from nlu.model.dropout import dropout
from nlu.model.padding import Padding
from nlu.model.positions import rotary_angles, rotate


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor | None,
           dropout_p: float) -> torch.Tensor:
    """softmax(q·kᵀ/√d, padded keys excluded) with dropout, · v; (batch, heads, seq, head_size).

    PyTorch's fused kernels serve every case on GPUs and fp32 inference on the CPU. On the CPU
    the same few operations run directly instead when there is dropout (SDPA then falls back to
    its unfused math path, which also runs a "safe softmax" pass for rows whose keys are all
    masked; no row here is) and in bf16, where SDPA's CPU kernel is slower than the matmuls it
    replaces: on the 2-core host (32 × 4 heads × 128², one thread) 12.3 vs 8.9 ms forward and
    77 vs 28 ms forward and backward. The softmax accumulates in fp32 whatever the dtype (torch's
    CPU kernel converts bf16 inside) and is stored in the matmul's dtype, the one the product
    with ``value`` reads.
    """
    if query.device.type != "cpu" or (dropout_p == 0.0 and query.dtype == torch.float32):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask, dropout_p=dropout_p)
    scores = (query * query.shape[-1] ** -0.5) @ key.transpose(-1, -2)
    if key_mask is not None:
        scores = scores.masked_fill_(~key_mask, float("-inf"))
    return dropout(scores.softmax(-1), dropout_p, training=dropout_p > 0.0) @ value


class SelfAttention(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_size = config.head_size
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = config.attention_dropout
        self.rotary_theta = config.rotary_theta if config.position_encoding == "rotary" else None

    def forward(self, hidden: torch.Tensor, padding: Padding, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``hidden`` is the stack's (tokens, hidden) rows, laid out as ``padding`` says.

        Each segment's rows go to a (batch, length) layout for attention (a view when the segment
        has no padding) and come back as rows after it. Padding keys are excluded from every
        query's softmax; padding queries still compute (their outputs are dropped or zeroed), which
        keeps every softmax row non-empty. With ``rows`` (indices into ``hidden``) only those rows
        go through the output projection and come back, (len(rows), hidden): keys and values
        still cover every token.
        """
        qkv = self.qkv(hidden)
        parts = [segment.unpad(self._attend(segment.pad(block), segment.key_mask))
                 for segment, block in zip(padding.segments, padding.split(qkv))]
        context = parts[0] if len(parts) == 1 else torch.cat(parts)
        if rows is not None:
            context = context.index_select(0, rows)
        return self.out(context)

    def _attend(self, qkv: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, seq, 3 · hidden) → (batch, seq, hidden)."""
        batch, length, _ = qkv.shape
        qkv = qkv.view(batch, length, 3, self.num_heads, self.head_size)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.rotary_theta is not None:
            cos, sin = rotary_angles(length, self.head_size, self.rotary_theta, qkv.device)
            query, key = rotate(query, cos, sin), rotate(key, cos, sin)
        context = attend(query, key, value, key_mask, self.attention_dropout if self.training else 0.0)
        return context.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_size)
