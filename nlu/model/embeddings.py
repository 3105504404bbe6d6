"""Token + segment + position embeddings, summed, normalised: the encoder's input layer.

Positions are learned (BERT), fixed sinusoids, or absent here because rotary positions are
applied inside attention instead."""

from __future__ import annotations

import math

import torch
from torch import nn

from nlu.config import EncoderConfig
from nlu.hardware import reads_values
from nlu.model.dropout import Dropout
from nlu.model.positions import sinusoidal_table


class Embeddings(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.position_encoding == "learned" else None
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout)
        self.config = config

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(self.config, input_ids, token_type_ids, values=reads_values(input_ids.device))
        embedded = self.word_embeddings(input_ids)
        length = input_ids.shape[1]
        if self.position_embeddings is not None:
            embedded = embedded + self.position_embeddings(torch.arange(length, device=input_ids.device))
        elif self.config.position_encoding == "sinusoidal":
            # At unit amplitude the sinusoids would be ~35x the size of token embeddings drawn with std
            # initializer_range and would drown them after the LayerNorm (pretraining then stalls at the
            # unigram loss); scaled to the RMS of a fresh learned position table, both start level.
            scale = self.config.initializer_range * math.sqrt(2)
            table = sinusoidal_table(length, self.config.hidden_size, input_ids.device)
            embedded = embedded + (table * scale).to(embedded.dtype)
        if token_type_ids is None:
            embedded = embedded + self.token_type_embeddings.weight[0]
        else:
            embedded = embedded + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.norm(embedded))


def check_inputs(config: EncoderConfig, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                 values: bool = True) -> None:
    """Turn the index errors torch would raise deep inside ``nn.Embedding`` (on a GPU: a device-side
    assert that kills the process) into plain words. Shapes are always checked; with ``values``
    the ids themselves, which on a GPU means waiting for it, so the model does that on the CPU
    only (or with NLU_DEBUG=1) and a GPU caller may check its host-side batch before the copy."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be a (batch, sequence) tensor, got shape {tuple(input_ids.shape)}")
    length = input_ids.shape[1]
    if config.position_encoding == "learned" and length > config.max_position_embeddings:
        raise ValueError(
            f"input has {length} tokens but the model has learned positions for only "
            f"{config.max_position_embeddings}; split long inputs into windows (NER prediction does this)"
        )
    if token_type_ids is not None and token_type_ids.shape != input_ids.shape:
        raise ValueError(f"token_type_ids shape {tuple(token_type_ids.shape)} != input_ids shape "
                         f"{tuple(input_ids.shape)}")
    if not values:
        return
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
        raise ValueError(
            f"input_ids must lie in [0, {config.vocab_size}); got values in "
            f"[{int(input_ids.min())}, {int(input_ids.max())}] — was the tokenizer built for another vocabulary?"
        )
    if token_type_ids is not None and token_type_ids.numel() and (
            token_type_ids.min() < 0 or token_type_ids.max() >= config.type_vocab_size):
        raise ValueError(f"token_type_ids must lie in [0, {config.type_vocab_size})")
