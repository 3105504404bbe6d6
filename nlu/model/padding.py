"""How a (batch, seq) batch's tokens are laid out inside the encoder stack.

Inside the stack there is one layout: a (rows, hidden) matrix of token vectors. Everything in a
layer except attention works token by token (projections, feed-forward, LayerNorm, dropout), so
it does not care where a row came from; attention alone needs a (batch, length) layout, which it
gets per *segment* of rows. A :class:`Padding` says which positions the rows are and how they
are cut into segments. Three layouts, chosen by :func:`padding_of`:

- **no padding** (no mask, or nothing masked): the rows are every position in order and one
  segment is the whole batch, with no key mask, so attention gets the plain (batch, seq) view
  and SDPA its fastest, mask-free kernel. Laying out costs nothing (reshapes are views).
- **packed** (CPU): the rows are the real tokens only, so padding costs no work outside
  attention. The sequences, sorted by length, are cut into runs of similar length and each run
  is padded only to its own longest sequence: attention's scores, softmax and dropout grow with
  length squared, so one long tweet no longer makes every short tweet of its batch pay for its
  length. Building it reads the mask's values (lengths, token counts) on the host.
- **masked** (GPUs and other accelerators): the rows are every position, padding included, and
  one segment with a key mask covers the batch. Packing would read the mask's values on the host
  — a device sync in every forward, which stalls the GPU's queue — so there padding positions
  are computed (and zeroed at the output) instead; the GPU has the arithmetic to spare.

Results are those of the padded batch in every layout (padded keys are masked out either way).
Packed rows are grouped segment by segment, so each segment is one contiguous block of rows and
attention splits the matrix into segments in one step (whose gradient is one concatenation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nlu.hardware import reads_values

SEGMENT_COST_IN_PAIRS = 16384
"""What one more segment costs (one more round of small attention kernels per layer, forward and
backward), in query-key pairs scored. Measured on the 2-core bf16 host, median training step, the
values interleaved on the same batches: multilingual-e5-small NER at batch 8 (German, bf16) 213 ms
at 1,024, 204 at 4,096, 190 at 16,384, 189 with one segment a batch; MiniLM on WNUT-16 tweets at
batch 32, 290 / 271 / 273 / 281 ms in bf16 and 506 / 497 / 502 / 531 ms in fp32. Cutting pays only
where lengths differ a lot within a batch: small batches and bf16 (cheaper pairs) want few cuts."""

PACKED_DEVICE_TYPES = frozenset({"cpu"})
"""Devices where padded batches are packed; elsewhere they take the sync-free masked layout."""


@dataclass(frozen=True)
class Segment:
    """Sequences attended to together: ``tokens`` consecutive rows, laid out (batch, length) for
    attention."""

    tokens: int
    batch: int
    length: int
    slots: torch.Tensor | None  # each row's place in the (batch · length) layout; None: row i is place i
    key_mask: torch.Tensor | None  # (batch, 1, 1, length), True at keys to attend to; None: every key

    def pad(self, block: torch.Tensor) -> torch.Tensor:
        """This segment's rows (tokens, ...) → (batch, length, ...), zeros at places without a row."""
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
    """Which (batch, seq) positions the stack's rows are, and how attention groups the rows.

    Build one with :meth:`none`, :meth:`packed` or :meth:`masked` (or let :func:`padding_of` pick).
    """

    def __init__(self, segments: list[Segment], whole: Segment, real: torch.Tensor | None, device: torch.device):
        self.segments = segments
        self.whole = whole  # the whole batch as one more layout of the same rows
        self.real = real  # (batch, seq) True at real tokens; None: no padding
        self.device = device

    @classmethod
    def none(cls, batch: int, length: int, device: torch.device) -> Padding:
        whole = Segment(batch * length, batch, length, None, None)
        return cls([whole], whole, None, device)

    @classmethod
    def masked(cls, attention_mask: torch.Tensor) -> Padding:
        """Every position a row, one segment with a key mask; reads no value of the mask. A sequence
        with no real token attends to all its positions, so its rows stay finite (they are zeroed)."""
        real = attention_mask.bool()
        batch, width = real.shape
        keys = real | ~real.any(1, keepdim=True)
        whole = Segment(batch * width, batch, width, None, keys[:, None, None, :])
        return cls([whole], whole, real, real.device)

    @classmethod
    def packed(cls, attention_mask: torch.Tensor, segment_cost: int | None) -> Padding:
        """Real tokens only, in segments cut by :func:`cut_points` (one segment when
        ``segment_cost`` is None)."""
        real = attention_mask.bool()
        batch, width = real.shape
        columns = torch.arange(1, width + 1, device=real.device)
        extents = (real * columns).amax(1).tolist()  # last real position + 1 (holes allowed)
        order = sorted((row for row in range(batch) if extents[row]), key=lambda row: extents[row])
        if not order:
            raise ValueError("every sequence of the batch is empty (attention_mask is all 0)")
        ends = [len(order)] if segment_cost is None else cut_points([extents[row] for row in order], segment_cost)
        segments, gathers, first = [], [], 0
        for end in ends:
            rows = torch.tensor(order[first:end], device=real.device)
            length = extents[order[end - 1]]
            present = real[rows, :length]
            local = present.flatten().nonzero().squeeze(1)
            gathers.append(rows[local // length] * width + local % length)
            dense = local.numel() == present.numel()
            segments.append(Segment(local.numel(), len(rows), length, None if dense else local,
                                    None if dense else present[:, None, None, :]))
            first = end
        gather = torch.cat(gathers)  # row → its place in the flattened (batch, seq) batch
        return cls(segments, Segment(len(gather), batch, width, gather, None), real, real.device)

    def split(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The rows (tokens, ...) of each segment."""
        return rows.split([segment.tokens for segment in self.segments])

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """(batch, seq, ...) → the stack's rows (tokens, ...)."""
        return self.whole.unpad(padded)

    def pad(self, rows: torch.Tensor) -> torch.Tensor:
        """The stack's rows (tokens, ...) → (batch, seq, ...), zeros at padded positions."""
        padded = self.whole.pad(rows)
        if self.real is None or self.whole.slots is not None:
            return padded
        return padded.masked_fill(~self.real.unsqueeze(-1), 0)

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """Where the (batch, seq) boolean POSITIONS, all real tokens, sit among the rows (in
        row-major order of the positions). Checked where reading values is free (the CPU) or
        with NLU_DEBUG=1."""
        wanted = positions.flatten()
        if self.real is not None and reads_values(wanted.device) and bool((wanted & ~self.real.flatten()).any()):
            raise _padded_outputs_error()
        if self.whole.slots is None:  # row i is position i
            return wanted.nonzero().squeeze(1)
        return self._row_of()[wanted]

    def first_rows(self) -> torch.Tensor:
        """The row of each sequence's first token ([CLS]), (batch,); found without reading any value
        when rows are positions (no device sync)."""
        places = torch.arange(0, self.whole.batch * self.whole.length, self.whole.length, device=self.device)
        if self.whole.slots is None:
            return places
        rows = self._row_of()[places]
        if bool((rows < 0).any()):  # packed batches are built on the host, so this read is free
            raise _padded_outputs_error()
        return rows

    def _row_of(self) -> torch.Tensor:
        """Each (batch · seq) place's row, -1 at padding (packed layout)."""
        row_of = torch.full((self.whole.batch * self.whole.length,), -1, dtype=torch.long, device=self.device)
        row_of[self.whole.slots] = torch.arange(self.whole.tokens, device=self.device)
        return row_of


def _padded_outputs_error() -> ValueError:
    return ValueError("outputs were asked for at padded positions (attention_mask 0), e.g. labels on padding or "
                      "an empty sequence; label only real tokens (use -100 elsewhere)")


def padding_of(attention_mask: torch.Tensor | None, input_ids: torch.Tensor) -> Padding:
    """The layout for this batch (see the module docstring)."""
    batch, length = input_ids.shape
    if attention_mask is None:
        return Padding.none(batch, length, input_ids.device)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
    # Packing reads the mask's values, which a compiled graph cannot branch on without breaking
    # into pieces (each compiled on its own): compiled models take the masked layout too.
    if attention_mask.device.type not in PACKED_DEVICE_TYPES or torch.compiler.is_compiling():
        return Padding.masked(attention_mask)
    if bool(attention_mask.bool().all()):
        return Padding.none(batch, length, input_ids.device)
    return Padding.packed(attention_mask, SEGMENT_COST_IN_PAIRS)
