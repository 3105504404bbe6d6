"""Predictions from a trained model: ``nlu.load(path)`` gives a :class:`Tagger` (NER) or a
:class:`TextClassifier`, each with ``predict(texts)``.

Raw text is cut into words by one rule, :func:`nlu.data.words.split_words` (BERT's pre-tokeniser's),
used by this API and by ``nlu predict`` alike.

Each word is tagged at its first sub-token, the position fine-tuning trains (long inputs are read in
overlapping windows, every word predicted once). Tags become entities the way transformers'
pipeline groups them (an ``I-X`` after ``O`` starts an entity rather than being dropped); an
entity's ``score`` is the mean, over its words, of the probability of the word's predicted tag at
its first sub-token (the pipeline's ``score`` with ``aggregation_strategy="first"``).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Sequence

import numpy as np
import torch
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from nlu.sources import model_directory
from nlu.data.classification import TextExample
from nlu.data.ner import NerSentence
from nlu.data.words import words_of_text
from nlu.errors import CheckpointError, DataError
from nlu.evaluation.confusion import entity_spans
from nlu.hardware import Precision, autocast, choose_device, choose_precision
from nlu.interop import from_transformers
from nlu.model import ForSequenceClassification, ForTokenClassification, NluModel, load_model
from nlu.tasks.classify import predict_probabilities, prediction_adjustment
from nlu.tasks.finetune import input_settings, is_nlu_checkpoint, model_input_length
from nlu.tasks.ner import predict_word_logits
from nlu.tokenizer import load_tokenizer

DEFAULT_MAX_LENGTH = 128
DEFAULT_STRIDE = 32
DEFAULT_BATCH_SIZE = 64

def listed(items: Any, source: str) -> list:
    """The inputs of ``predict`` as a list (from a list, a generator, a numpy array, a pandas column);
    what cannot be iterated (None, a number) is named."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise DataError(f"expected a text or a list of them, got {items!r}", source)
    return list(items)


def checked_text(text: str, source: str, line: int) -> str:
    """``text``, refused when it holds a surrogate (half an emoji, from JSON cut in the middle of
    one): no tokenizer can read it, and what it stood for is lost."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DataError(f"character {error.start} ({text[error.start]!r}) is a surrogate, half a UTF-16 character: "
                        f"not text (decode with errors='replace' to keep the rest)", source, line) from None
    return text


def text_of_words(words: Sequence[str], source: str, line: int) -> tuple[str, list[tuple[int, int]]]:
    """Pre-split words joined by single spaces, as transformers' pipeline joins them, with each word's span."""
    offsets, position = [], 0
    for index, word in enumerate(words):
        if not isinstance(word, str) or not word:
            raise DataError(f"word {index} is {word!r}: pre-split words must be non-empty strings", source, line)
        offsets.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), offsets


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    type: str
    text: str
    """The original characters, ``text[start:end]`` of the input."""
    start: int
    end: int
    """Character offsets into the input string, end exclusive."""
    score: float
    """Mean over the entity's words of the probability of each word's tag (at its first sub-token)."""
    word_start: int
    word_end: int
    """The entity's words, ``words[word_start:word_end]``."""


@dataclass(frozen=True)
class TaggedText:
    text: str
    words: list[str]
    offsets: list[tuple[int, int]]
    tags: list[str]
    entities: list[Entity]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Classification:
    label: str
    score: float
    """The probability of ``label``."""
    probabilities: dict[str, float] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Over the last axis, in float32 as transformers' pipeline computes it."""
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def entities_from_tags(text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str],
                       scores: Sequence[float]) -> list[Entity]:
    """Entities of one tagged text, grouped as transformers' pipeline groups tags; ``scores`` per word."""
    entities = []
    for span in entity_spans(list(tags), mode="default"):
        start, end = offsets[span.start][0], offsets[span.end - 1][1]
        score = sum(scores[span.start:span.end]) / (span.end - span.start)
        entities.append(Entity(span.type, text[start:end], start, end, score, span.start, span.end))
    return entities


# ---------------------------------------------------------------------------------------------
# Predictors
# ---------------------------------------------------------------------------------------------


@dataclass
class Predictor:
    """A model with its tokenizer and the way it reads inputs; built by :func:`load`."""

    model: NluModel
    tokenizer: Any
    directory: Path
    max_length: int
    stride: int
    device: torch.device
    precision: Precision
    batch_size: int = DEFAULT_BATCH_SIZE

    @property
    def labels(self) -> list[str]:
        return list(self.model.config.labels)


class Tagger(Predictor):
    """Named-entity recognition: ``predict`` returns a :class:`TaggedText` per input."""

    task = "ner"

    def predict(self, texts: str | Sequence[str] | Sequence[Sequence[str]], *, is_split_into_words: bool = False,
                source: str = "<input>") -> TaggedText | list[TaggedText]:
        """Tag one text (a string) or many (a list of strings).

        Pre-split words are taken as they are: one sentence as a list of words with
        ``is_split_into_words=True``, several as a list of such lists; their offsets then refer
        to the words joined by single spaces. Results keep the input order; ``source`` names
        the input in error messages (items are numbered from 1)."""
        if isinstance(texts, str):
            return self.predict([texts], source=source)[0]
        items = listed(texts, source)
        if is_split_into_words and any(isinstance(item, str) for item in items):  # one sentence's words
            return self.predict([items], source=source)[0]
        inputs = []
        for line, item in enumerate(items, start=1):
            if isinstance(item, str):
                inputs.append((item, *words_of_text(checked_text(item, source, line))))
            elif isinstance(item, Iterable) and not isinstance(item, bytes):
                text, offsets = text_of_words(list(item), source, line)
                inputs.append((checked_text(text, source, line), list(item), offsets))
            else:
                raise DataError(f"{item!r} is neither a text nor a list of words", source, line)
        sentences = [NerSentence(words, ["O"] * len(words), source, line)
                     for line, (_, words, _) in enumerate(inputs, start=1) if words]
        with autocast(self.device, self.precision):
            logits, _ = predict_word_logits(self.model, self.tokenizer, sentences, self.max_length, self.stride,
                                            self.batch_size)
        rows = iter(softmax(row) for row in logits)
        results = []
        for text, words, offsets in inputs:
            row = next(rows) if words else np.zeros((0, len(self.labels)))
            tags = [self.labels[i] for i in row.argmax(-1)]
            scores = row.max(-1).tolist()
            results.append(TaggedText(text, words, offsets, tags, entities_from_tags(text, offsets, tags, scores)))
        return results


@dataclass
class TextClassifier(Predictor):
    """Text classification: ``predict`` returns a :class:`Classification` per input."""

    task = "classify"
    adjustment: torch.Tensor | None = None
    """Subtracted from the logits before the softmax (a model trained with logit_adjustment=predict)."""

    def predict(self, texts: str | Sequence[str], pairs: str | Sequence[str] | None = None,
                source: str = "<input>") -> Classification | list[Classification]:
        """Classify one text or many; ``pairs`` gives the second text of each pair, for pair models.
        Inputs longer than ``max_length`` sub-tokens are read up to that length."""
        single = isinstance(texts, str)  # not a call of itself: its warnings point at the caller's line
        if single:
            texts, pairs = [texts], None if pairs is None else [pairs]
        texts = listed(texts, source)
        pairs = [None] * len(texts) if pairs is None else listed(pairs, source)
        if len(pairs) != len(texts):
            raise DataError(f"{len(texts)} texts but {len(pairs)} pairs", source)
        examples = []
        for line, (text, pair) in enumerate(zip(texts, pairs), start=1):
            if not isinstance(text, str) or not isinstance(pair, (str, type(None))):
                raise DataError(f"{text if isinstance(text, str) else pair!r} is not a text", source, line)
            examples.append(TextExample(checked_text(text, source, line), pair and checked_text(pair, source, line),
                                        None, source, line))
        results, truncated = self.classify(examples)
        if truncated:
            warnings.warn(f"{truncated} text(s) longer than max_length={self.max_length} sub-tokens were classified "
                          f"from their first {self.max_length}", stacklevel=2)
        blank = [example.line for example in examples if not (example.text + (example.text_pair or "")).strip()]
        if blank:
            warnings.warn(f"{len(blank)} text(s) are blank (input {', '.join(map(str, blank[:5]))}"
                          f"{', ...' if len(blank) > 5 else ''}): their label is what the model says of no text",
                          stacklevel=2)
        return results[0] if single else results

    def classify(self, examples: Sequence[TextExample]) -> tuple[list[Classification], int]:
        """One result per example, and how many examples were longer than max_length."""
        if not examples:
            return [], 0
        with autocast(self.device, self.precision):
            probabilities, truncated = predict_probabilities(self.model, self.tokenizer, list(examples),
                                                             self.max_length, self.batch_size, self.adjustment)
        return [Classification(self.labels[int(row.argmax())], float(row.max()),
                               {label: float(p) for label, p in zip(self.labels, row)})
                for row in probabilities], truncated


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_model(directory: Path) -> NluModel:
    """An nlu checkpoint as the class it was saved from, or a transformers BERT folder as its nlu counterpart."""
    if is_nlu_checkpoint(directory):
        return load_model(directory)
    return from_transformers(directory)


def input_lengths(directory: Path, model: NluModel, tokenizer, max_length: int | None,
                  stride: int | None) -> tuple[int, int]:
    """(max_length, stride) to read inputs with.

    Unless given: as saved at fine-tuning (``input_settings.json``), else the tokenizer's
    ``model_max_length`` where it fits the model, else 128 and 32. The length is capped at the
    model's learned positions. A stride that does not fit the length (it must stay below
    max_length - 2 sub-tokens) becomes half the window, so ``--max-length 32`` works with a model
    fine-tuned at 128/32."""
    saved = input_settings(directory)
    fallback = tokenizer.model_max_length if tokenizer.model_max_length <= model.config.max_position_embeddings \
        else DEFAULT_MAX_LENGTH
    length = model_input_length(model.config, max_length or saved.get("max_length", fallback))
    if stride is None:
        stride = saved.get("stride", DEFAULT_STRIDE)
        if not stride < length - 2:
            stride = max(length - 2, 0) // 2
    return length, stride


def load(path: str | Path, device: str | None = None, *, precision: str | None = None, max_length: int | None = None,
         stride: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> Tagger | TextClassifier:
    """A predictor for the fine-tuned model at ``path``: an nlu run folder, an nlu model folder
    (``runs/x/best``), a transformers BERT folder (one ``nlu export`` wrote, or any other), or a
    hub model id (downloaded only when online).

    ``device``: None picks the GPU if there is one, else the CPU. ``precision``: None (the
    default) is bf16/fp16 on a GPU (as :func:`nlu.hardware.choose_precision` picks) and fp32 on the
    CPU, where it gives exactly the numbers of the run's own evaluation and of the exported model
    in transformers; "auto", "no" (fp32), "bf16" or "fp16" choose. ``max_length`` / ``stride``: see
    :func:`input_lengths`."""
    directory = model_directory(path)
    model = read_model(directory)
    if not isinstance(model, (ForTokenClassification, ForSequenceClassification)):
        raise CheckpointError(f"{directory}: holds a model without a task head ({type(model).__name__}); nlu.load "
                              f"needs a model fine-tuned for NER or classification")
    tokenizer = load_tokenizer(directory)
    if len(tokenizer) > model.config.vocab_size:
        raise CheckpointError(f"{directory}: the tokenizer has {len(tokenizer):,} tokens but the model embeds only "
                              f"{model.config.vocab_size:,}")
    chosen = choose_device(device)
    model.to(chosen).eval()
    length, window_stride = input_lengths(directory, model, tokenizer, max_length, stride)
    # Read into max_length: nlu windows (NER) or truncates (classification) itself, and a finite
    # value would only make the tokenizer warn about every long sentence it is asked to split.
    tokenizer.model_max_length = VERY_LARGE_INTEGER
    if precision is None and chosen.type != "cuda":
        computed = Precision("no", "the default off a GPU: the numbers of the run's evaluation and of the export")
    else:
        computed = choose_precision(precision or "auto", chosen)
    options = dict(model=model, tokenizer=tokenizer, directory=directory, max_length=length, stride=window_stride,
                   device=chosen, precision=computed, batch_size=batch_size)
    if isinstance(model, ForTokenClassification):
        return Tagger(**options)
    return TextClassifier(**options, adjustment=prediction_adjustment(directory))
