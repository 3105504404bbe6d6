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

    PyTorch's fused kernels serve every case but one: with dropout on CPU, SDPA falls back to
    its unfused math path, which also runs a "safe softmax" pass for rows whose keys are all
    masked. No row here is (every sequence has a real token), so on CPU with dropout the same
    few operations run directly, with the cheaper dropout mask: this is most of attention's
    cost in CPU fine-tuning.
    """
    if dropout_p == 0.0 or query.device.type != "cpu":
        return F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask, dropout_p=dropout_p)
    scores = (query * query.shape[-1] ** -0.5) @ key.transpose(-1, -2)
    if key_mask is not None:
        scores = scores.masked_fill_(~key_mask, float("-inf"))
    probabilities = scores.softmax(-1, dtype=torch.float32).to(value.dtype)  # fp32 softmax under bf16 too
    return dropout(probabilities, dropout_p, training=True) @ value


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

        Packed projections go back to a (batch, seq) layout one segment of similar-length
        sequences at a time (see :mod:`nlu.model.padding`) and are packed again after attention.
        Padding keys are excluded from every query's softmax; padding queries still compute
        (their outputs are dropped when packing), which keeps every softmax row non-empty.
        With ``rows`` (indices into ``hidden``'s token rows) only those rows go through the
        output projection and come back, (len(rows), hidden): keys and values still cover every token.
        """
        qkv = self.qkv(hidden)
        if padding is None:
            context = self._attend(qkv, None)
        else:
            parts = [segment.unpad(self._attend(segment.pad(block), segment.key_mask))
                     for segment, block in zip(padding.segments, padding.split(qkv))]
            context = parts[0] if len(parts) == 1 else torch.cat(parts)
        if rows is not None:
            context = context.reshape(-1, context.shape[-1]).index_select(0, rows)
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
