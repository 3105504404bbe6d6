import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nlu.config import EncoderConfig
from nlu.data.corpus import Document, read_documents
from nlu.data.pretraining import (
    PretrainingCollator,
    Vocabulary,
    build_nsp_examples,
    collator_examples,
    tokenize_documents,
    truncate_pair,
)
from nlu.errors import ConfigError, DataError
from nlu.model import ForPreTraining
from nlu.constants import IGNORE_INDEX
from nlu.constants import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID
from nlu.tokenizer import train_tokenizer

NEWS = Path(__file__).resolve().parents[1] / "data" / "corpus" / "news.txt"
VOCABULARY = Vocabulary(size=1000, pad_id=PAD_ID, mask_id=MASK_ID, special_ids=frozenset(range(5)))


# --- next-sentence pairs ---------------------------------------------------------------------

def unique_documents(count: int, seed: int, sentences=(10, 40), tokens=(5, 20)) -> list[list[list[int]]]:
    """Every token id occurs once and a document's ids are consecutive integers, so where a segment
    came from can be read off its ids."""
    rng = random.Random(seed)
    documents, next_id = [], 5
    for _ in range(count):
        document = []
        for _ in range(rng.randint(*sentences)):
            length = rng.randint(*tokens)
            document.append(list(range(next_id, next_id + length)))
            next_id += length
        documents.append(document)
    return documents


def segments(example: dict) -> tuple[list[int], list[int]]:
    ids = example["input_ids"]
    first_sep = ids.index(SEP_ID)
    return ids[1:first_sep], ids[first_sep + 1:-1]


def is_run(ids: list[int]) -> bool:
    return ids == list(range(ids[0], ids[0] + len(ids)))


def sentence_starts(document: list[list[int]]) -> set[int]:
    return {sentence[0] for sentence in document} | {document[-1][-1] + 1}


def test_examples_have_bert_layout():
    documents = unique_documents(60, seed=1)
    examples = build_nsp_examples(documents, max_length=64, seed=0)
    assert examples
    for example in examples:
        ids, types = example["input_ids"], example["token_type_ids"]
        a, b = segments(example)
        assert len(ids) <= 64 and a and b
        assert ids[0] == CLS_ID and ids[-1] == SEP_ID and ids.count(SEP_ID) == 2
        assert types == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert example["nsp_label"] == int(example["b_document_index"] != example["document_index"])


def test_segments_come_from_the_right_places():
    documents = unique_documents(60, seed=2)
    examples = build_nsp_examples(documents, max_length=64, seed=0)
    for example in examples:
        a, b = segments(example)
        a_document, b_document = documents[example["document_index"]], documents[example["b_document_index"]]
        assert is_run(a) and is_run(b)
        assert a_document[0][0] <= a[0] and a[-1] <= a_document[-1][-1]
        assert b_document[0][0] <= b[0] and b[-1] <= b_document[-1][-1]
        untruncated = len(a) + len(b) < 64 - 3
        if example["nsp_label"] == 0:
            # B continues A; truncation may trim A's tail and B's head, but the sentence boundary
            # where the chunk was split lies in between.
            assert any(a[-1] < start <= b[0] for start in sentence_starts(a_document))
            if untruncated:
                assert b[0] == a[-1] + 1
        if untruncated:
            assert a[0] in sentence_starts(a_document) and b[0] in sentence_starts(b_document)


def test_every_sentence_is_used_once_as_its_own_documents_text():
    """BERT puts the sentences a random B displaced back, so no text is lost: with no truncation,
    the A segments plus the actual-next B segments of a document cover it exactly once."""
    documents = unique_documents(40, seed=3)
    examples = build_nsp_examples(documents, max_length=4096, seed=0, short_seq_probability=0.0)
    used: dict[int, list[int]] = {index: [] for index in range(len(documents))}
    for example in examples:
        a, b = segments(example)
        used[example["document_index"]] += a + (b if example["nsp_label"] == 0 else [])
    for index, document in enumerate(documents):
        assert sorted(used[index]) == [token for sentence in document for token in sentence]


def test_labels_are_balanced():
    documents = unique_documents(100, seed=4, sentences=(100, 200))
    examples = build_nsp_examples(documents, max_length=128, seed=0, short_seq_probability=0.0)
    n = len(examples)
    random_fraction = sum(example["nsp_label"] for example in examples) / n
    # Binomial sd of the fraction is sqrt(0.25 / n); allow 5 sd. On top, BERT forces a random B for
    # a chunk of one sentence; with every sentence shorter than the target that only happens once
    # per document, at its end, which can raise the fraction by at most half of documents / n.
    tolerance = 5 * math.sqrt(0.25 / n)
    assert 0.5 - tolerance <= random_fraction <= 0.5 + 0.5 * len(documents) / n + tolerance


def test_one_sentence_documents_are_used_as_a_with_a_random_b():
    documents = [[[5 + 2 * index, 6 + 2 * index]] for index in range(20)]
    examples = build_nsp_examples(documents, max_length=32, seed=0)
    assert len(examples) == 20
    assert all(example["nsp_label"] == 1 for example in examples)


def test_short_sequence_probability_shortens_examples():
    documents = unique_documents(60, seed=5)

    def mean_length(probability: float) -> float:
        examples = build_nsp_examples(documents, max_length=128, seed=0, short_seq_probability=probability)
        return float(np.mean([len(example["input_ids"]) for example in examples]))

    assert mean_length(1.0) < 0.75 * mean_length(0.0)


def test_pairs_are_deterministic_given_the_seed():
    documents = unique_documents(30, seed=6)
    first = build_nsp_examples(documents, max_length=64, seed=11)
    assert build_nsp_examples(documents, max_length=64, seed=11) == first
    assert build_nsp_examples(documents, max_length=64, seed=12) != first


def test_collator_examples_are_seeded_draws_in_the_tokenizers_ids_numbered_in_order():
    documents = unique_documents(30, seed=6)
    ids = type("Specials", (), {"cls_token_id": 101, "sep_token_id": 102})()  # not nlu's own layout
    examples = collator_examples(documents, ids, max_length=64, seed=11, duplicates=2)
    first, second = (build_nsp_examples(documents, max_length=64, seed=seed, cls_id=101, sep_id=102) for seed in (11, 12))
    assert [{k: v for k, v in example.items() if k != "index"} for example in examples] == first + second
    assert [example["index"] for example in examples] == list(range(len(first) + len(second)))


def test_pair_building_errors():
    with pytest.raises(DataError, match="at least 2"):
        build_nsp_examples(unique_documents(1, seed=0), max_length=64, seed=0)
    with pytest.raises(ConfigError, match="max_length"):
        build_nsp_examples(unique_documents(2, seed=0), max_length=4, seed=0)
    with pytest.raises(DataError, match="must hold tokens"):
        build_nsp_examples([[[5, 6]], [[7], []]], max_length=64, seed=0)


@pytest.mark.parametrize(("a_length", "b_length", "max_tokens", "expected"), [
    (10, 3, 8, (5, 3)),   # only the longer side is trimmed
    (3, 10, 8, (3, 5)),
    (5, 5, 9, (5, 4)),    # a tie trims B, as BERT
    (6, 6, 8, (4, 4)),    # then the sides alternate
    (1, 50, 2, (1, 1)),   # each side keeps a token
    (4, 3, 8, (4, 3)),    # short enough already
])
def test_truncation_trims_the_longer_side(a_length, b_length, max_tokens, expected):
    a, b = list(range(a_length)), list(range(100, 100 + b_length))
    for seed in range(20):
        short_a, short_b = truncate_pair(a, b, max_tokens, random.Random(seed))
        assert (len(short_a), len(short_b)) == expected
        assert is_run(short_a) and is_run(short_b)


def test_truncation_trims_both_ends():
    starts, ends = set(), set()
    for seed in range(50):
        a, _ = truncate_pair(list(range(20)), [100], 11, random.Random(seed))
        starts.add(a[0])
        ends.add(a[-1])
    assert len(starts) > 1 and len(ends) > 1


# --- tokenizing documents --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    text = ("The river rose after the rain. The town closed the bridge over the river. "
            "The rain stopped at night and the town opened the bridge again.").split(". ")
    return train_tokenizer(iter(text * 3), vocab_size=120, min_frequency=1)


def test_tokenize_documents_drops_empty_sentences_and_documents(tokenizer):
    documents = [
        Document(["The rain stopped.", "\x07\x08", "The town opened the bridge."], "mem", 1),
        Document(["\x07"], "mem", 5),
        Document(["The river rose."], "mem", 7),
    ]
    expected = [
        [tokenizer("The rain stopped.", add_special_tokens=False)["input_ids"],
         tokenizer("The town opened the bridge.", add_special_tokens=False)["input_ids"]],
        [tokenizer("The river rose.", add_special_tokens=False)["input_ids"]],
    ]
    assert tokenize_documents(documents, tokenizer) == expected
    assert tokenize_documents(documents, tokenizer, batch_size=1) == expected


# --- masking ---------------------------------------------------------------------------------

def sequences(count: int, length: int, seed: int) -> list[dict]:
    """[CLS] A [SEP] B [SEP] with random ordinary tokens and about 5% [UNK]."""
    rng = np.random.default_rng(seed)
    examples = []
    for index in range(count):
        ids = rng.integers(5, VOCABULARY.size, size=length)
        ids[rng.random(length) < 0.05] = UNK_ID
        half = length // 2
        ids[0], ids[half], ids[-1] = CLS_ID, SEP_ID, SEP_ID
        examples.append({"input_ids": ids.tolist(), "token_type_ids": [0] * (half + 1) + [1] * (length - half - 1),
                         "nsp_label": index % 2, "index": index})
    return examples


def test_masking_proportions():
    examples = sequences(2000, 128, seed=0)
    batch = PretrainingCollator(VOCABULARY, seed=3)(examples)
    original = torch.tensor([example["input_ids"] for example in examples])
    candidates = original >= 5
    selected = batch["mlm_labels"] != IGNORE_INDEX
    # The count per sequence is exact: round(0.15 × candidates), at least 1.
    expected = torch.tensor([max(1, round(0.15 * int(count))) for count in candidates.sum(1)])
    assert torch.equal(selected.sum(1), expected)
    assert not (selected & ~candidates).any()
    assert torch.equal(batch["mlm_labels"][selected], original[selected])

    inputs = batch["input_ids"][selected]
    n = int(selected.sum())
    masked = float((inputs == MASK_ID).float().mean())
    kept = float((inputs == original[selected]).float().mean())
    replaced = inputs[(inputs != MASK_ID) & (inputs != original[selected])]
    # n ≈ 34,000 selected positions; a binomial fraction p has sd sqrt(p(1-p)/n): 0.0022 for 0.8,
    # 0.0016 for 0.1. We allow 5 sd. A random replacement equal to the original (chance 1/995)
    # counts as kept, a bias of 0.0001, far inside the tolerance.
    assert abs(masked - 0.8) < 5 * math.sqrt(0.8 * 0.2 / n)
    assert abs(kept - 0.1) < 5 * math.sqrt(0.1 * 0.9 / n)
    assert abs(len(replaced) / n - 0.1) < 5 * math.sqrt(0.1 * 0.9 / n)
    # Replacements are uniform over the 995 ordinary ids: never special, and with ~3,400 draws
    # about 995 × (1 - e^-3.4) ≈ 962 distinct values, mean 502 with sd 287 / sqrt(3,400) ≈ 5.
    assert int(replaced.min()) >= 5
    assert len(set(replaced.tolist())) > 900
    assert abs(float(replaced.float().mean()) - 502) < 5 * 287 / math.sqrt(len(replaced))


def test_padding_and_special_tokens_are_never_masked():
    examples = [{"input_ids": [CLS_ID, *ids, SEP_ID, 9, SEP_ID], "token_type_ids": [0] * (len(ids) + 2) + [1, 1],
                 "nsp_label": label, "index": index}
                for index, (ids, label) in enumerate([([7, UNK_ID, 8], 0), ([7] * 12, 1), ([UNK_ID], 1)])]
    batch = PretrainingCollator(VOCABULARY, pad_to_multiple_of=8)(examples)
    assert batch["input_ids"].shape == (3, 16)
    assert all(tensor.dtype == torch.long for tensor in batch.values())
    for row, example in enumerate(examples):
        size = len(example["input_ids"])
        ids = torch.tensor(example["input_ids"])
        special = ids < 5
        assert torch.equal(batch["input_ids"][row, :size][special], ids[special])
        assert (batch["mlm_labels"][row, :size][special] == IGNORE_INDEX).all()
        assert (batch["mlm_labels"][row, size:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row, size:] == PAD_ID).all()
        assert batch["attention_mask"][row].tolist() == [1] * size + [0] * (16 - size)
        assert batch["token_type_ids"][row].tolist() == example["token_type_ids"] + [0] * (16 - size)
        assert (batch["mlm_labels"][row] != IGNORE_INDEX).sum() >= 1
    assert batch["nsp_labels"].tolist() == [0, 1, 1]


def test_a_sequence_of_special_tokens_has_no_labels():
    masked, labels = PretrainingCollator(VOCABULARY).mask([CLS_ID, UNK_ID, SEP_ID], index=0)
    assert masked.tolist() == [CLS_ID, UNK_ID, SEP_ID] and (labels == IGNORE_INDEX).all()


def test_mask_depends_only_on_seed_epoch_and_index():
    ids = sequences(1, 128, seed=1)[0]["input_ids"]
    first = PretrainingCollator(VOCABULARY, seed=5).mask(ids, index=7)
    np.random.seed(123)
    torch.manual_seed(123)
    again = PretrainingCollator(VOCABULARY, seed=5).mask(ids, index=7)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))

    def differs(collator: PretrainingCollator, index: int) -> bool:
        return not np.array_equal(collator.mask(ids, index)[1], first[1])

    next_epoch = PretrainingCollator(VOCABULARY, seed=5)
    next_epoch.set_epoch(1)
    assert differs(next_epoch, 7)
    assert differs(PretrainingCollator(VOCABULARY, seed=5), 8)
    assert differs(PretrainingCollator(VOCABULARY, seed=6), 7)


def test_batch_composition_does_not_change_an_examples_mask():
    examples = sequences(6, 40, seed=2)
    collator = PretrainingCollator(VOCABULARY, seed=1)
    collator.set_epoch(3)
    whole = collator(examples)
    order = [4, 0, 5]
    part = collator([examples[index] for index in order])
    for name in ("input_ids", "mlm_labels", "token_type_ids", "attention_mask"):
        assert torch.equal(part[name], whole[name][order])


def test_vocabulary_from_tokenizer(tokenizer):
    vocabulary = Vocabulary.from_tokenizer(tokenizer)
    assert vocabulary == Vocabulary(len(tokenizer), PAD_ID, MASK_ID, frozenset(range(5)))
    with pytest.raises(ConfigError, match="special ids"):
        Vocabulary(size=5, pad_id=PAD_ID, mask_id=MASK_ID, special_ids=frozenset(range(5)))


# --- the whole chain -------------------------------------------------------------------------

@pytest.mark.skipif(not NEWS.is_file(), reason="the shipped corpus is not there")
def test_shipped_corpus_feeds_the_pretraining_model():
    documents = read_documents([NEWS])[:40]
    tokenizer = train_tokenizer(iter([s for document in documents for s in document.sentences]), vocab_size=1500)
    examples = build_nsp_examples(tokenize_documents(documents, tokenizer), max_length=64, seed=0)
    for index, example in enumerate(examples):
        example["index"] = index
    batch = next(iter(DataLoader(examples, batch_size=16, shuffle=True, collate_fn=PretrainingCollator(tokenizer))))
    config = EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
                           max_position_embeddings=64)
    output = ForPreTraining(config)(**batch)
    assert torch.isfinite(output.loss)
    assert abs(output.mlm_loss.item() - math.log(len(tokenizer))) < 1.5
