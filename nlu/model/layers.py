"""The transformer encoder layer and the stack of them.

``post`` normalisation is BERT's (x = LN(x + sublayer(x))); ``pre`` normalises before each
sub-layer (x = x + sublayer(LN(x))) and adds a final LayerNorm, which trains more stably at
higher learning rates but is not what pretrained BERT checkpoints contain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nlu.config import EncoderConfig
from nlu.model.attention import SelfAttention
from nlu.model.dropout import Dropout
from nlu.model.padding import Padding

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def activation(name: str):
    return _ACTIVATIONS[name]


class FeedForward(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = activation(config.activation)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(hidden)))


class EncoderLayer(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout)
        self.pre_norm = config.norm_placement == "pre"

    def forward(self, hidden: torch.Tensor, padding: Padding, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``hidden`` is the stack's (tokens, hidden) rows (see :mod:`nlu.model.padding`).

        With ``rows`` (indices into the token rows) the layer's output is computed for those
        rows only, (len(rows), hidden): every token still serves as a key and value, so the
        rows come out as they would from the whole layer, without the work at the others.
        """
        residual = hidden if rows is None else hidden.index_select(0, rows)
        if self.pre_norm:
            hidden = residual + self.dropout(self.attention(self.attention_norm(hidden), padding, rows))
            return hidden + self.dropout(self.feed_forward(self.feed_forward_norm(hidden)))
        hidden = self.attention_norm(residual + self.dropout(self.attention(hidden, padding, rows)))
        return self.feed_forward_norm(hidden + self.dropout(self.feed_forward(hidden)))


class EncoderStack(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))
        self.final_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.norm_placement == "pre" else None
        )

    def forward(self, hidden: torch.Tensor, padding: Padding, last_rows: torch.Tensor | None = None) -> torch.Tensor:
        """``last_rows``: the token rows the caller reads; the last layer computes only those."""
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, padding, last_rows if index == len(self.layers) - 1 else None)
        return hidden if self.final_norm is None else self.final_norm(hidden)
