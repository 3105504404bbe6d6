"""Padding-free computation for padded batches.

Everything in a layer except attention works token by token (projections, feed-forward,
LayerNorm, dropout), so on a padded batch it runs on the real tokens only, packed into one
(tokens, hidden) matrix. Attention alone needs a (batch, seq) layout. It gets one per
*segment*: the sequences, sorted by length, are cut into runs of similar length and each run
is padded only to its own longest sequence. Attention's scores, softmax and dropout grow with
length squared, so one long tweet no longer makes every short tweet of its batch pay for its
length. Results are those of the padded batch (padded keys are masked out either way).

Tokens are packed segment by segment, so each segment's tokens are one contiguous block of
rows: attention splits the packed matrix into them in one step (whose gradient is one
concatenation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# What one more segment costs (one more round of small attention kernels, forward and backward),
# in query-key pairs scored. On the 2-core CPU (MiniLM, NER batches of 32 tweets) any value from 0
# to 4,096 gave the same step time within noise, and one segment per batch was 12% slower; 1,024
# keeps segments few. Devices not listed keep one segment per batch: there each segment is more
# kernel launches, and that trade has not been measured.
SEGMENT_COST_IN_PAIRS = {"cpu": 1024}


@dataclass(frozen=True)
class Segment:
    """Sequences attended to together: ``tokens`` consecutive packed rows, laid out
    (batch, length) for attention."""

    tokens: int
    batch: int
    length: int
    slots: torch.Tensor | None  # each token's place in the (batch · length) layout; None: no padding
    key_mask: torch.Tensor | None  # (batch, 1, 1, length), True at real keys; None: no padding

    def pad(self, block: torch.Tensor) -> torch.Tensor:
        """This segment's packed rows (tokens, ...) → (batch, length, ...), zeros at padding."""
        if self.slots is not None:
            block = block.new_zeros(self.batch * self.length, *block.shape[1:]).index_copy_(0, self.slots, block)
        return block.view(self.batch, self.length, *block.shape[1:])

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """(batch, length, ...) → (tokens, ...)."""
        flat = padded.reshape(self.batch * self.length, *padded.shape[2:])
        return flat if self.slots is None else flat.index_select(0, self.slots)


def cut_points(lengths: list[int], segment_cost: int) -> list[int]:
    """Where to cut ascending ``lengths`` into segments so that the attention work, Σ batch ·
    length² per segment plus ``segment_cost`` each, is least; returns the segments' end indices.

    Cuts fall only between different lengths (a cut between equal ones saves nothing), so the
    dynamic programme runs over the distinct lengths, at most a few hundred.
    """
    ends = [i + 1 for i in range(len(lengths)) if i + 1 == len(lengths) or lengths[i + 1] != lengths[i]]
    best = [0] * (len(ends) + 1)
    previous = [0] * (len(ends) + 1)
    for k, end in enumerate(ends, start=1):
        longest = lengths[end - 1]
        best[k], previous[k] = min(
            (best[j] + (end - (ends[j - 1] if j else 0)) * longest * longest + segment_cost, j) for j in range(k)
        )
    cuts, k = [], len(ends)
    while k:
        cuts.append(ends[k - 1])
        k = previous[k]
    return cuts[::-1]


class Padding:
    """Where the real tokens of a (batch, seq) batch are, and how attention groups them."""

    def __init__(self, attention_mask: torch.Tensor, segment_cost: int | None):
        real = attention_mask.bool()
        batch, width = real.shape
        self.real_flat = real.flatten()
        columns = torch.arange(1, width + 1, device=real.device)
        extents = (real * columns).amax(1).tolist()  # last real position + 1 (holes allowed)
        order = sorted((row for row in range(batch) if extents[row]), key=lambda row: extents[row])
        if not order:
            raise ValueError("every sequence of the batch is empty (attention_mask is all 0)")
        if segment_cost is None:
            ends = [len(order)]
        else:
            ends = cut_points([extents[row] for row in order], segment_cost)
        self.segments: list[Segment] = []
        gathers = []
        first = 0
        for end in ends:
            rows = torch.tensor(order[first:end], device=real.device)
            length = extents[order[end - 1]]
            present = real[rows, :length]
            local = present.flatten().nonzero().squeeze(1)
            gathers.append(rows[local // length] * width + local % length)
            dense = local.numel() == present.numel()
            self.segments.append(Segment(local.numel(), len(rows), length, None if dense else local,
                                         None if dense else present[:, None, None, :]))
            first = end
        # packed row → its position in the flattened (batch, seq) batch
        self.gather = torch.cat(gathers)
        # the whole batch is one more layout of the same packed rows
        self.whole = Segment(len(self.gather), batch, width, self.gather, None)

    def split(self, packed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The packed (tokens, ...) rows of each segment."""
        return packed.split([segment.tokens for segment in self.segments])

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """(batch, seq, ...) → (tokens, ...), segment by segment."""
        return self.whole.unpad(padded)

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """Where the (batch, seq) boolean POSITIONS, all real tokens, sit among the packed rows
        (in row-major order of the positions)."""
        wanted = positions.flatten()
        if bool((wanted & ~self.real_flat).any()):
            raise ValueError("outputs were asked for at padded positions (attention_mask 0), e.g. labels on "
                             "padding; label only real tokens (use -100 elsewhere)")
        row_of = torch.full_like(self.real_flat, -1, dtype=torch.long)
        row_of[self.gather] = torch.arange(len(self.gather), device=row_of.device)
        return row_of[wanted]

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """(tokens, ...) → (batch, seq, ...), zeros at padded positions."""
        return self.whole.pad(packed)


def padding_of(attention_mask: torch.Tensor | None, input_ids: torch.Tensor) -> Padding | None:
    """None when nothing is padded: the plain dense path, and SDPA's fastest mask-free kernel."""
    if attention_mask is None:
        return None
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
    if bool(attention_mask.bool().all()):
        return None
    # Cutting depends on the mask's values, which a compiled graph cannot branch on.
    segment_cost = None if torch.compiler.is_compiling() else SEGMENT_COST_IN_PAIRS.get(attention_mask.device.type)
    return Padding(attention_mask, segment_cost)
