"""Multi-head self-attention on PyTorch's fused scaled-dot-product kernel.

Queries, keys and values come from one fused projection (one matmul instead of three);
the checkpoint interop splits and joins it so weights stay compatible with BERT's separate
``query``/``key``/``value`` layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nlu.config import EncoderConfig
from nlu.model.padding import Padding
from nlu.model.positions import rotary_angles, rotate


class SelfAttention(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_size = config.head_size
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = config.attention_dropout
        self.rotary_theta = config.rotary_theta if config.position_encoding == "rotary" else None

    def forward(self, hidden: torch.Tensor, padding: Padding | None, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``hidden`` is (batch, seq, hidden) without padding, else (tokens, hidden) packed.

        The packed projections are scattered back to (batch, seq) for the attention kernel.
        Padding keys are excluded from every query's softmax; padding queries still compute
        (their outputs are dropped when packing again), which keeps every softmax row non-empty.
        With ``rows`` (indices into ``hidden``'s token rows) only those rows go through the
        output projection and come back, (len(rows), hidden): keys and values still cover every token.
        """
        qkv = self.qkv(hidden)
        if padding is not None:
            qkv = padding.pad(qkv)
        batch, length, _ = qkv.shape
        hidden_size = self.num_heads * self.head_size
        qkv = qkv.view(batch, length, 3, self.num_heads, self.head_size)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.rotary_theta is not None:
            cos, sin = rotary_angles(length, self.head_size, self.rotary_theta, hidden.device)
            query, key = rotate(query, cos, sin), rotate(key, cos, sin)
        context = F.scaled_dot_product_attention(
            query, key, value,
            attn_mask=None if padding is None else padding.key_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        context = context.transpose(1, 2).reshape(batch, length, hidden_size)
        if padding is not None:
            context = padding.unpad(context)
        if rows is not None:
            context = context.reshape(-1, hidden_size).index_select(0, rows)
        return self.out(context)
