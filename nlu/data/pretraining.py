"""From documents to pretraining batches: token ids, BERT's next-sentence pairs, dynamic masking.

Pairs are built once (``build_nsp_examples``, as BERT's ``create_pretraining_data.py`` does) and
stay fixed; masks are drawn anew every epoch in the collator (RoBERTa's dynamic masking), but from
a generator seeded by (seed, epoch, example index), so a resumed run sees exactly the masks an
uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

import numpy as np
import torch

from nlu.constants import CLS_ID, IGNORE_INDEX, SEP_ID
from nlu.data.corpus import Document, encode_sentences
from nlu.errors import ConfigError, DataError

TokenizedDocument = list[list[int]]
"""A document's sentences as WordPiece ids, without special tokens."""


def tokenize_documents(documents: Sequence[Document], tokenizer: Any, batch_size: int = 1000) -> list[TokenizedDocument]:
    """Sentences that normalise to nothing (control characters only, say) are dropped so every
    segment has tokens, and documents left empty are dropped so every document can supply one.
    Indices into the result are therefore not indices into ``documents``."""
    encoded = encode_sentences([sentence for document in documents for sentence in document.sentences],
                               tokenizer, batch_size)
    tokenized = []
    for document in documents:
        sentences = [ids for ids in islice(encoded, len(document.sentences)) if ids]
        if sentences:
            tokenized.append(sentences)
    return tokenized


def build_nsp_examples(
    tokenized_documents: Sequence[TokenizedDocument],
    max_length: int,
    seed: int,
    short_seq_probability: float = 0.1,
    random_next_probability: float = 0.5,
    *,
    cls_id: int = CLS_ID,
    sep_id: int = SEP_ID,
) -> list[dict[str, Any]]:
    """BERT's recipe. Each document is cut into chunks of consecutive sentences about
    ``max_length - 3`` tokens long (shorter, at random, with ``short_seq_probability``, so the model
    also sees the short inputs it will meet when fine-tuned); a chunk splits at a random sentence
    boundary into A and B. With ``random_next_probability`` B is replaced by sentences from another
    document, and the chunk's unused sentences are put back to start the next chunk, so no text
    is wasted.

    As in BERT, a chunk of a single sentence (a one-sentence document, or a sentence that fills the
    target alone) has nothing to split, so it always becomes A with a random B; this tilts the
    labels towards "random" (55% on the shipped news corpus at max_length 128, which is then the
    accuracy to beat). Unlike BERT, which retries 10 times and may still pick the same document,
    the random document is drawn from the other documents only, so label 1 always means "another
    document". ``cls_id``/``sep_id`` default to ``nlu.tokenizer``'s layout; pass the tokenizer's
    ids when it has another one.

    Each example holds ``input_ids`` ([CLS] A [SEP] B [SEP]), ``token_type_ids``, ``nsp_label``
    (0: B follows A, 1: B is random, as in ``BertForPreTraining``), and ``document_index`` /
    ``b_document_index`` (indices into ``tokenized_documents``) for inspection.
    """
    if len(tokenized_documents) < 2:
        raise DataError(f"next-sentence prediction needs at least 2 non-empty documents, got {len(tokenized_documents)}")
    if any(not document or not all(document) for document in tokenized_documents):
        raise DataError("every document and sentence must hold tokens (tokenize_documents drops empty ones)")
    if max_length < 5:
        raise ConfigError(f"max_length ({max_length}) leaves no room for two segments and 3 special tokens")
    max_tokens = max_length - 3
    rng = random.Random(seed)
    examples = []
    for index in range(len(tokenized_documents)):
        target = rng.randint(2, max_tokens) if rng.random() < short_seq_probability else max_tokens
        for a, b, b_index in _segment_pairs(tokenized_documents, index, target, random_next_probability, rng):
            a, b = truncate_pair(a, b, max_tokens, rng)
            examples.append(_example(a, b, index, b_index, cls_id, sep_id))
    return examples


def collator_examples(tokenized_documents: Sequence[TokenizedDocument], tokenizer: Any, max_length: int, seed: int,
                      duplicates: int = 1, short_seq_probability: float = 0.1) -> list[dict[str, Any]]:
    """The pairs ``nlu pretrain`` trains on, ready for :class:`PretrainingCollator`: ``duplicates``
    draws of pairs (seeds ``seed``, ``seed + 1``, …, BERT's ``dupe_factor``) in the tokenizer's
    special ids, each numbered by its place, from which its masks are derived."""
    examples: list[dict[str, Any]] = []
    for duplicate in range(duplicates):
        examples += build_nsp_examples(tokenized_documents, max_length, seed=seed + duplicate,
                                       short_seq_probability=short_seq_probability,
                                       cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id)
    for index, example in enumerate(examples):
        example["index"] = index
    return examples


def _segment_pairs(
    documents: Sequence[TokenizedDocument], index: int, target: int, random_next_probability: float, rng: random.Random,
) -> Iterator[tuple[list[int], list[int], int]]:
    """(A, B, document of B) for every chunk of document ``index``, before truncation."""
    document = documents[index]
    chunk: list[list[int]] = []
    length = 0
    position = 0
    while position < len(document):
        chunk.append(document[position])
        length += len(document[position])
        if position == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) > 1 else 1
            a = list(chain.from_iterable(chunk[:a_end]))
            if len(chunk) == 1 or rng.random() < random_next_probability:
                b_index, b = _random_segment(documents, index, target - len(a), rng)
                position -= len(chunk) - a_end
            else:
                b_index, b = index, list(chain.from_iterable(chunk[a_end:]))
            yield a, b, b_index
            chunk, length = [], 0
        position += 1


def _random_segment(
    documents: Sequence[TokenizedDocument], exclude: int, target: int, rng: random.Random,
) -> tuple[int, list[int]]:
    """Consecutive sentences from a random other document, from a random start, until ``target``
    tokens (at least one sentence, even when A already fills the target)."""
    index = rng.randrange(len(documents) - 1)
    index += index >= exclude
    document = documents[index]
    segment: list[int] = []
    for sentence in document[rng.randrange(len(document)):]:
        segment += sentence
        if len(segment) >= target:
            break
    return index, segment


def truncate_pair(a: Sequence[int], b: Sequence[int], max_tokens: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """Trim one token at a time from the longer segment (B on a tie, as BERT), from its front or
    back at random: trimming the longer side keeps both segments informative, and trimming either
    end means segments do not always start and end at sentence boundaries ("to add more
    randomness and avoid biases", in BERT's words). Each side keeps a token if ``max_tokens >= 2``."""
    a_span, b_span = [0, len(a)], [0, len(b)]  # [start, end) of what is kept
    while _width(a_span) + _width(b_span) > max_tokens:
        longer = a_span if _width(a_span) > _width(b_span) else b_span
        if rng.random() < 0.5:
            longer[0] += 1
        else:
            longer[1] -= 1
    return list(a[slice(*a_span)]), list(b[slice(*b_span)])


def _width(span: list[int]) -> int:
    return span[1] - span[0]


def _example(a: list[int], b: list[int], a_index: int, b_index: int, cls_id: int, sep_id: int) -> dict[str, Any]:
    return {
        "input_ids": [cls_id, *a, sep_id, *b, sep_id],
        "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1),
        "nsp_label": int(b_index != a_index),
        "document_index": a_index,
        "b_document_index": b_index,
    }


@dataclass(frozen=True)
class Vocabulary:
    """What masking needs to know about the vocabulary. ``special_ids`` are never masked and never
    used as random replacements; it includes [UNK]: BERT does mask [UNK], but predicting it
    teaches nothing (the original word is gone) and spends loss on an artefact of the vocabulary."""

    size: int
    pad_id: int
    mask_id: int
    special_ids: frozenset[int]

    def __post_init__(self) -> None:
        if not {self.pad_id, self.mask_id} <= self.special_ids:
            raise ConfigError("the padding and mask ids must be among the special ids")
        if not self.special_ids < set(range(self.size)):
            raise ConfigError(f"special ids {sorted(self.special_ids)} must be a proper subset of range({self.size})")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> Vocabulary:
        needed = ("pad_token", "mask_token", "cls_token", "sep_token")
        missing = [name for name in needed if getattr(tokenizer, name + "_id") is None]
        if missing:
            raise ConfigError(f"the tokenizer has no {', '.join(missing)}; pretraining needs all of {', '.join(needed)}")
        return cls(len(tokenizer), tokenizer.pad_token_id, tokenizer.mask_token_id, frozenset(tokenizer.all_special_ids))


class PretrainingCollator:
    """Pads a list of NSP examples into a batch for ``ForPreTraining`` and masks it.

    Each example's mask depends only on (seed, epoch, example["index"]), never on the global RNG,
    the batch it lands in or the worker that collates it: a run resumed mid-epoch re-creates the
    exact masks of an uninterrupted one, while each epoch still sees fresh masks. Call
    ``set_epoch`` before iterating over an epoch (with persistent DataLoader workers the workers
    keep their own copy, so recreate them or do not persist them).
    """

    def __init__(
        self,
        tokenizer: Any | Vocabulary,
        mlm_probability: float = 0.15,
        seed: int = 0,
        pad_to_multiple_of: int | None = None,
    ):
        if not 0 < mlm_probability <= 1:
            raise ConfigError(f"mlm_probability must be in (0, 1], got {mlm_probability}")
        if seed < 0:
            raise ConfigError(f"seed must be non-negative (it seeds numpy's generator), got {seed}")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ConfigError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        self.vocabulary = tokenizer if isinstance(tokenizer, Vocabulary) else Vocabulary.from_tokenizer(tokenizer)
        self.mlm_probability = mlm_probability
        self.seed = seed
        self.pad_to_multiple_of = pad_to_multiple_of
        self.epoch = 0
        self._special_ids = np.array(sorted(self.vocabulary.special_ids))
        self._replacement_ids = np.setdiff1d(np.arange(self.vocabulary.size), self._special_ids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        length = self._padded_length(max(len(example["input_ids"]) for example in examples))
        shape = (len(examples), length)
        batch = {
            "input_ids": np.full(shape, self.vocabulary.pad_id, dtype=np.int64),
            "token_type_ids": np.zeros(shape, dtype=np.int64),
            "attention_mask": np.zeros(shape, dtype=np.int64),
            "mlm_labels": np.full(shape, IGNORE_INDEX, dtype=np.int64),
        }
        for row, example in enumerate(examples):
            size = len(example["input_ids"])
            batch["input_ids"][row, :size], batch["mlm_labels"][row, :size] = self.mask(
                example["input_ids"], _dataset_index(example))
            batch["token_type_ids"][row, :size] = example["token_type_ids"]
            batch["attention_mask"][row, :size] = 1
        tensors = {name: torch.from_numpy(array) for name, array in batch.items()}
        tensors["nsp_labels"] = torch.tensor([example["nsp_label"] for example in examples], dtype=torch.long)
        return tensors

    def mask(self, input_ids: Sequence[int], index: int) -> tuple[np.ndarray, np.ndarray]:
        """BERT's rule: pick round(p × candidates) positions (at least one) among the non-special
        tokens; of those, 80% become [MASK], 10% a random non-special token and 10% stay, decided
        per position, so the model cannot tell which inputs to trust. Returns (masked ids, labels)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        ids = np.asarray(input_ids, dtype=np.int64)
        labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
        candidates = np.flatnonzero(~np.isin(ids, self._special_ids))
        if len(candidates) == 0:
            return ids, labels
        chosen = rng.choice(candidates, size=max(1, round(self.mlm_probability * len(candidates))), replace=False)
        labels[chosen] = ids[chosen]
        action = rng.random(len(chosen))
        masked = ids.copy()
        masked[chosen[action < 0.8]] = self.vocabulary.mask_id
        replaced = chosen[(action >= 0.8) & (action < 0.9)]
        masked[replaced] = rng.choice(self._replacement_ids, size=len(replaced))
        return masked, labels

    def _padded_length(self, longest: int) -> int:
        multiple = self.pad_to_multiple_of or 1
        return -(-longest // multiple) * multiple


def _dataset_index(example: Mapping[str, Any]) -> int:
    if "index" not in example:
        raise KeyError("each pretraining example needs 'index' (its position in the dataset); "
                       "its mask is derived from it")
    return example["index"]
