"""Task heads that sit on the encoder's hidden states."""

from __future__ import annotations

import torch
from torch import nn

from nlu.config import EncoderConfig
from nlu.model.dropout import Dropout
from nlu.model.layers import activation


class Pooler(nn.Module):
    """One vector per sequence.

    ``cls`` is BERT's pooler (the [CLS] state through dense + tanh, trained by NSP);
    ``mean`` and ``max`` reduce over real tokens only, so padding never leaks into the result.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.pooling = config.pooling
        self.dense = nn.Linear(config.hidden_size, config.hidden_size) if config.pooling == "cls" else None

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pooling == "cls":
            return self.pool_first(hidden[:, 0])
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        real = attention_mask.bool().unsqueeze(-1)
        if self.pooling == "mean":
            return (hidden * real).sum(1) / real.sum(1).clamp(min=1)
        return hidden.masked_fill(~real, torch.finfo(hidden.dtype).min).amax(1)

    def pool_first(self, first: torch.Tensor) -> torch.Tensor:
        """``cls`` pooling of the first tokens' vectors, (batch, hidden)."""
        return torch.tanh(self.dense(first))


class MaskedLanguageModelHead(nn.Module):
    """Transform (dense, activation, LayerNorm) then project onto the vocabulary.

    The projection matrix is the token-embedding matrix, passed in at call time: tying by
    argument rather than by sharing a Parameter keeps the state dict free of aliases.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = activation(config.activation)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, embedding_weight: torch.Tensor) -> torch.Tensor:
        transformed = self.norm(self.activation(self.dense(hidden)))
        return nn.functional.linear(transformed, embedding_weight, self.bias)


class Classifier(nn.Module):
    """Dropout then a linear layer: the head for sequence and token classification alike."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if config.num_labels < 1:
            raise ValueError("a classification model needs config.labels (the label names), got none")
        dropout = config.hidden_dropout if config.classifier_dropout is None else config.classifier_dropout
        self.dropout = Dropout(dropout)
        self.linear = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(hidden))
