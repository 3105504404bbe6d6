"""Padding-free computation for padded batches.

Everything in a layer except attention works token by token (projections, feed-forward,
LayerNorm, dropout), so on a padded batch it runs on the real tokens only, packed into one
(tokens, hidden) matrix. Attention alone needs the (batch, seq) layout; it gets it back by
scattering its projected queries/keys/values into place and gathers its output again. On
short, ragged text (tweets, review snippets) this removes the work on padding, which is often
a third of a batch or more; results are the same as on the padded batch.
"""

from __future__ import annotations

import torch


class Padding:
    """Where the real tokens of a (batch, seq) batch are."""

    def __init__(self, attention_mask: torch.Tensor):
        real = attention_mask.bool()
        self.batch, self.length = real.shape
        self.real_flat = real.flatten()
        self.indices = self.real_flat.nonzero().squeeze(1)
        self.key_mask = real[:, None, None, :]  # for SDPA: True where a key is a real token

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """(batch, seq, ...) → (tokens, ...)."""
        return padded.flatten(0, 1).index_select(0, self.indices)

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """Where the (batch, seq) boolean POSITIONS, all real tokens, sit among the packed rows."""
        wanted = positions.flatten()
        if bool((wanted & ~self.real_flat).any()):
            raise ValueError("outputs were asked for at padded positions (attention_mask 0), e.g. MLM labels "
                             "on padding; label only real tokens")
        return (self.real_flat.cumsum(0) - 1)[wanted]

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """(tokens, ...) → (batch, seq, ...), zeros at padded positions."""
        padded = packed.new_zeros(self.batch * self.length, *packed.shape[1:]).index_copy_(0, self.indices, packed)
        return padded.view(self.batch, self.length, *packed.shape[1:])


def padding_of(attention_mask: torch.Tensor | None, input_ids: torch.Tensor) -> Padding | None:
    """None when nothing is padded: the plain dense path, and SDPA's fastest mask-free kernel."""
    if attention_mask is None:
        return None
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
    if bool(attention_mask.bool().all()):
        return None
    return Padding(attention_mask)
