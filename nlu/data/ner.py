"""NER data: CoNLL / JSONL / Hugging Face readers, IOB2 validation and sub-word windows.

Readers return :class:`NerSentence` records and reject anything malformed with a
:class:`~nlu.errors.DataError` that names ``path:line``: a silently skipped or mangled
sentence shows up much later as a mysteriously low F1, where it is far harder to trace.

:func:`encode_ner` turns sentences into model-sized windows of sub-token ids (plain lists, no
tensors); :func:`merge_window_predictions` maps per-window predictions back to exactly one
prediction per word.
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nlu.data import dataset_source, physical_lines, read_json_lines, read_text, require_column
from nlu.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

IGNORE_INDEX = -100
DOCSTART = "-DOCSTART-"
TAG_PATTERN = re.compile(r"O|[BI]-\S+")
HUB_TIMEOUT_S = 3.0
HUB_SPLITS = {"dev": "validation"}
TRUTHY = ("1", "true", "yes", "on")


@dataclass
class NerSentence:
    """One sentence with its origin, so later stages can point back at the input.

    ``line`` is where the sentence starts (1-based); in CoNLL files word ``i`` is on line
    ``line + i``. For rows of a ``datasets.Dataset``, ``source`` names the dataset and ``line``
    is the row index (as in ``ds[i]``).
    """

    words: list[str]
    tags: list[str]
    source: str
    line: int


@dataclass
class NerWindow:
    """At most ``max_length`` sub-tokens of one sentence, ready for a collator.

    ``word_ids[p]`` is the index of the word whose *first* sub-token sits at position ``p``
    (None for [CLS]/[SEP] and continuation pieces). Windows of a long sentence overlap, so
    ``responsible_words`` lists the words whose prediction is taken from this window.
    """

    input_ids: list[int]
    token_type_ids: list[int]
    labels: list[int]
    word_ids: list[int | None]
    sentence_index: int
    responsible_words: list[int]


class IobRepairWarning(UserWarning):
    """Issued once per input when ``repair=True`` rewrote tags; ``count`` says how many."""

    def __init__(self, source: str, count: int):
        self.source = source
        self.count = count
        super().__init__(f"{source}: repaired {count} I- tag(s) that did not continue an entity (now B-)")


# ---------------------------------------------------------------------------------------------
# Validation shared by all readers
# ---------------------------------------------------------------------------------------------


def _check_tags(tags: list[str], source: str, lines: Sequence[int], repair: bool) -> tuple[list[str], int]:
    """Enforce IOB2: an entity starts with B-X and I-X only continues an X.

    IOB1 data (I-X opening an entity) is common; ``repair`` turns such tags into B-X instead of
    failing, and the count of repairs is returned so it can be reported.
    """
    checked: list[str] = []
    repaired = 0
    for tag, line in zip(tags, lines, strict=True):
        if not TAG_PATTERN.fullmatch(tag):
            raise DataError(f"tag {tag!r} is not O, B-<type> or I-<type>", source, line)
        previous = checked[-1] if checked else None
        if tag.startswith("I-") and previous not in (f"B-{tag[2:]}", tag):
            if not repair:
                where = "at the start of a sentence" if previous is None else f"after {previous}"
                raise DataError(
                    f"{tag} {where}: in IOB2 an entity starts with B-{tag[2:]} "
                    f"(pass repair=True to turn such tags into B-{tag[2:]})",
                    source,
                    line,
                )
            tag = f"B-{tag[2:]}"
            repaired += 1
        checked.append(tag)
    return checked, repaired


def _sentence(
    words: list[str], tags: list[str], source: str, lines: Sequence[int], repair: bool
) -> tuple[NerSentence, int]:
    checked, repaired = _check_tags(tags, source, lines, repair)
    return NerSentence(words, checked, source, lines[0]), repaired


def _warn_repairs(source: str, repaired: int) -> None:
    if repaired:
        warnings.warn(IobRepairWarning(source, repaired), stacklevel=3)


# ---------------------------------------------------------------------------------------------
# CoNLL
# ---------------------------------------------------------------------------------------------


def _split_columns(text: str, source: str, line: int) -> list[str]:
    """Split on tabs if the line has any, else on ASCII spaces.

    Only these two separate columns: tweets contain tokens made of other Unicode whitespace
    (NBSP, U+2028, zero-width spaces) that ``str.split()`` would silently cut apart.
    """
    text = text.rstrip(" \t")
    if not text:
        return []
    if "\t" not in text:
        return [field for field in text.split(" ") if field]
    fields = [field.strip(" ") for field in text.split("\t")]
    for number, field in enumerate(fields, start=1):
        if not field:
            raise DataError(f"column {number} is empty", source, line)
    return fields


def _conll_blocks(path: str | PathLike) -> list[list[tuple[int, list[str]]]]:
    """Group ``(line_number, columns)`` into sentences; blank and -DOCSTART- lines end one."""
    source = str(path)
    blocks: list[list[tuple[int, list[str]]]] = [[]]
    for number, text in enumerate(physical_lines(read_text(path)), start=1):
        fields = _split_columns(text, source, number)
        if fields and fields[0] != DOCSTART:
            blocks[-1].append((number, fields))
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block]


@dataclass(frozen=True)
class _Columns:
    """The column layout fixed by the first token line; every other line must match it."""

    width: int
    first_line: int
    token: int
    tag: int

    @classmethod
    def from_first_line(cls, line: int, fields: list[str], token_column: int, tag_column: int, source: str) -> _Columns:
        width = len(fields)
        if width < 2:
            raise DataError("only 1 column: expected a token and a tag (missing tag?)", source, line)
        try:
            token, tag = range(width)[token_column], range(width)[tag_column]
        except IndexError:
            raise DataError(
                f"token_column={token_column} / tag_column={tag_column} do not exist in the {width} columns "
                f"of the first line",
                source,
                line,
            ) from None
        if token == tag:
            raise DataError(f"token_column and tag_column both select column {token + 1}", source, line)
        return cls(width, line, token, tag)

    def pick(self, line: int, fields: list[str], source: str) -> tuple[str, str]:
        if len(fields) != self.width:
            hint = " (missing tag?)" if len(fields) < self.width else ""
            raise DataError(
                f"{len(fields)} columns, but the first line ({self.first_line}) has {self.width}{hint}", source, line
            )
        return fields[self.token], fields[self.tag]


def read_conll(
    path: str | PathLike, *, token_column: int = 0, tag_column: int = -1, repair: bool = False
) -> list[NerSentence]:
    """Read a CoNLL-style file: one token per line, columns separated by tabs or spaces, a blank
    line between sentences. ``repair`` converts IOB1-style I- tags to B- (see IobRepairWarning)."""
    source = str(path)
    sentences: list[NerSentence] = []
    repaired = 0
    columns: _Columns | None = None
    for block in _conll_blocks(path):
        if columns is None:
            columns = _Columns.from_first_line(*block[0], token_column, tag_column, source)
        lines = [line for line, _ in block]
        words, tags = zip(*(columns.pick(line, fields, source) for line, fields in block))
        sentence, count = _sentence(list(words), list(tags), source, lines, repair)
        sentences.append(sentence)
        repaired += count
    if not sentences:
        raise DataError("no sentences: the file is empty or holds only blank and -DOCSTART- lines", path)
    _warn_repairs(source, repaired)
    return sentences


# ---------------------------------------------------------------------------------------------
# JSONL and Hugging Face datasets
# ---------------------------------------------------------------------------------------------


def _tag_names(values: Any, label_names: Sequence[str] | None, field: str, source: str, line: int) -> list[str]:
    """Accept tag strings, or integer ids mapped through ``label_names``."""
    if not isinstance(values, list):
        raise DataError(f"{field!r} must be a list, got {type(values).__name__}", source, line)
    if all(isinstance(value, str) for value in values):
        return values
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        raise DataError(f"{field!r} must hold only strings or only integers", source, line)
    if label_names is None:
        raise DataError(f"{field!r} holds integer ids but no label names were given to map them", source, line)
    for value in values:
        if not 0 <= value < len(label_names):
            raise DataError(f"tag id {value} in {field!r} is outside 0..{len(label_names) - 1}", source, line)
    return [label_names[value] for value in values]


def _record_sentence(
    words: Any,
    tag_values: Any,
    label_names: Sequence[str] | None,
    fields: tuple[str, str],
    source: str,
    line: int,
    repair: bool,
) -> tuple[NerSentence, int]:
    """Validate one JSON object or dataset row; ``fields`` are the (tokens, tags) field names."""
    tokens_field, tags_field = fields
    if not isinstance(words, list) or not all(isinstance(word, str) and word for word in words):
        raise DataError(f"{tokens_field!r} must be a list of non-empty strings", source, line)
    if not words:
        raise DataError(f"{tokens_field!r} is empty: a sentence needs at least one token", source, line)
    tags = _tag_names(tag_values, label_names, tags_field, source, line)
    if len(tags) != len(words):
        raise DataError(f"{len(words)} {tokens_field} but {len(tags)} {tags_field}", source, line)
    return _sentence(words, tags, source, [line] * len(words), repair)


def read_jsonl(
    path: str | PathLike, *, label_names: Sequence[str] | None = None, repair: bool = False
) -> list[NerSentence]:
    """Read one ``{"tokens": [...], "ner_tags": [...]}`` object per line; integer tags are
    mapped through ``label_names``."""
    source = str(path)
    sentences: list[NerSentence] = []
    repaired = 0
    for line, record in read_json_lines(path):
        missing = [key for key in ("tokens", "ner_tags") if key not in record]
        if missing:
            raise DataError(f"missing key(s) {', '.join(missing)}; found {', '.join(record) or 'none'}", source, line)
        sentence, count = _record_sentence(
            record["tokens"], record["ner_tags"], label_names, ("tokens", "ner_tags"), source, line, repair
        )
        sentences.append(sentence)
        repaired += count
    if not sentences:
        raise DataError("no sentences: the file is empty", path)
    _warn_repairs(source, repaired)
    return sentences


def from_hf_dataset(
    ds: Any, tokens_field: str = "tokens", tags_field: str = "ner_tags", *, repair: bool = False
) -> list[NerSentence]:
    """Read a ``datasets.Dataset``; a ``Sequence(ClassLabel)`` tags feature supplies the tag names."""
    from datasets import ClassLabel  # deferred: importing datasets costs a second for every user of nlu

    source = dataset_source(ds)
    require_column(ds, tokens_field)
    inner = getattr(require_column(ds, tags_field), "feature", None)
    label_names = inner.names if isinstance(inner, ClassLabel) else None
    sentences: list[NerSentence] = []
    repaired = 0
    for row, (words, tags) in enumerate(zip(ds[tokens_field], ds[tags_field], strict=True)):
        sentence, count = _record_sentence(
            words, tags, label_names, (tokens_field, tags_field), source, row, repair
        )
        sentences.append(sentence)
        repaired += count
    if not sentences:
        raise DataError("the dataset has no rows", source)
    _warn_repairs(source, repaired)
    return sentences


# ---------------------------------------------------------------------------------------------
# PAN-X
# ---------------------------------------------------------------------------------------------


def _local_files_hint(lang: str) -> str:
    return (
        f"To use PAN-X.{lang} without the hub, put train.conll, dev.conll and test.conll (one token<TAB>tag per "
        f"line, a blank line between sentences; or .jsonl files with one "
        f'{{"tokens": [...], "ner_tags": [...]}} object per line, tags as strings) in one directory and '
        f"pass local_dir=<that directory> / set data.local_dir in the task config."
    )


def _hub_unavailable_reason() -> str | None:
    """Why the hub cannot be used, or None; decided within HUB_TIMEOUT_S so offline runs never hang.

    The probe runs in a daemon thread because name resolution ignores socket timeouts.
    """
    for variable in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in TRUTHY:
            return f"{variable} is set"
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    address = (endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80))
    failure: list[str] = ["no answer"]

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=HUB_TIMEOUT_S).close()
            failure.clear()
        except OSError as exc:
            failure[0] = str(exc)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_TIMEOUT_S)
    return f"cannot reach {address[0]} within {HUB_TIMEOUT_S:g} s ({failure[0]})" if failure else None


def read_ner_file(path: str | PathLike, *, repair: bool = False) -> list[NerSentence]:
    """JSONL by its ``.jsonl`` extension, CoNLL columns otherwise (``.conll``, ``.txt``, ``.iob``...)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path)
    if path.suffix == ".jsonl":
        return read_jsonl(path, repair=repair)
    return read_conll(path, repair=repair)


def _read_local_split(directory: Path, split: str, repair: bool) -> list[NerSentence]:
    conll, jsonl = directory / f"{split}.conll", directory / f"{split}.jsonl"
    for candidate in (conll, jsonl):
        if candidate.is_file():
            return read_ner_file(candidate, repair=repair)
    raise DataError(f"found neither {conll.name} nor {jsonl.name}", directory)


def load_panx(
    lang: str, split: str, local_dir: str | PathLike | None = None, *, repair: bool = False
) -> list[NerSentence]:
    """PAN-X (WikiANN as packaged by XTREME) for ``lang``: from ``local_dir`` when given, else the hub.

    The hub is probed first so an offline machine gets instructions within seconds rather
    than a hang or a retry loop deep inside ``datasets``.
    """
    if local_dir is not None:
        return _read_local_split(Path(local_dir), split, repair)
    reason = _hub_unavailable_reason()
    if reason is not None:
        raise DataError(f"cannot download PAN-X.{lang}: {reason}. {_local_files_hint(lang)}")
    from datasets import load_dataset  # deferred: see from_hf_dataset

    try:
        ds = load_dataset("xtreme", f"PAN-X.{lang}", split=HUB_SPLITS.get(split, split))
    except Exception as exc:  # network, hub and cache errors have no common base class
        raise DataError(f"cannot load PAN-X.{lang} {split} from the hub: {exc}. {_local_files_hint(lang)}") from exc
    return from_hf_dataset(ds, repair=repair)


# ---------------------------------------------------------------------------------------------
# Label sets
# ---------------------------------------------------------------------------------------------


def label_list(sentences: Sequence[NerSentence]) -> list[str]:
    """``O`` first, then ``B-X, I-X`` per entity type in sorted order.

    Both B- and I- are listed for every type seen, so that a type whose training entities are
    all one word still has an I- label for continuation sub-tokens and for dev/test data.
    """
    types = sorted({tag[2:] for sentence in sentences for tag in sentence.tags if tag != "O"})
    return ["O"] + [f"{prefix}-{entity}" for entity in types for prefix in "BI"]


def check_label_sets(train: Sequence[NerSentence], other: Sequence[NerSentence], other_name: str) -> None:
    """Fail if ``other`` uses tags the training data cannot teach: the model could never predict
    them and they would quietly count as errors."""
    known = set(label_list(train))
    first_seen: dict[str, NerSentence] = {}
    for sentence in other:
        for tag in sentence.tags:
            if tag not in known:
                first_seen.setdefault(tag, sentence)
    if first_seen:
        listing = ", ".join(f"{tag} (first in the sentence at {s.source}:{s.line})" for tag, s in first_seen.items())
        first = next(iter(first_seen.values()))
        problem = f"{other_name} has tags that never occur in the training data: {listing}"
        raise DataError(problem, first.source, first.line)


# ---------------------------------------------------------------------------------------------
# Sub-word encoding and windows
# ---------------------------------------------------------------------------------------------


def _word_pieces(sentences: Sequence[NerSentence], tokenizer: PreTrainedTokenizerFast) -> list[list[list[int]]]:
    """Sub-token ids per word per sentence (one batched tokenizer call).

    A word the tokenizer drops entirely (control or zero-width characters) becomes [UNK], so
    that it still owns a position and gets a prediction.
    """
    encoding = tokenizer([s.words for s in sentences], is_split_into_words=True, add_special_tokens=False)
    result = []
    for index, sentence in enumerate(sentences):
        pieces: list[list[int]] = [[] for _ in sentence.words]
        for token_id, word in zip(encoding["input_ids"][index], encoding.word_ids(index), strict=True):
            pieces[word].append(token_id)
        result.append([word_pieces or [tokenizer.unk_token_id] for word_pieces in pieces])
    return result


def _window_spans(counts: list[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` of at most ``budget`` sub-tokens each.

    Each next window starts as far back as keeps the overlap within ``stride`` sub-tokens, but
    always at least one word later, so the loop ends. Words are never cut at a window edge.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < len(counts) and used + counts[end] <= budget:
            used += counts[end]
            end += 1
        spans.append((start, end))
        if end == len(counts):
            return spans
        next_start, overlap = end, 0
        while next_start - 1 > start and overlap + counts[next_start - 1] <= stride:
            next_start -= 1
            overlap += counts[next_start]
        start = next_start


def _owners(spans: list[tuple[int, int]], counts: list[int]) -> list[int]:
    """For each word, the window where it has the most context: the largest distance (in
    sub-tokens) to the nearer window edge. A window edge at the sentence boundary cuts no
    context, so it counts as infinitely far. Ties go to the earlier window."""
    offsets = [0, *accumulate(counts)]

    def context(span: tuple[int, int], word: int) -> float:
        start, end = span
        left = offsets[word] - offsets[start] if start > 0 else math.inf
        right = offsets[end] - offsets[word + 1] if end < len(counts) else math.inf
        return min(left, right)

    return [
        max((k for k, (start, end) in enumerate(spans) if start <= word < end), key=lambda k: context(spans[k], word))
        for word in range(len(counts))
    ]


def _continuation_tag(tag: str) -> str:
    return f"I-{tag[2:]}" if tag.startswith("B-") else tag


def _word_label_ids(
    sentence: NerSentence, label_to_id: dict[str, int], label_all_subtokens: bool
) -> list[tuple[int, int]]:
    """(first sub-token label, continuation label) per word."""

    def lookup(tag: str, word: int) -> int:
        if tag not in label_to_id:
            raise DataError(
                f"tag {tag!r} (word {word}, {sentence.words[word]!r}) is not in the label set "
                f"{', '.join(label_to_id)}",
                sentence.source,
                sentence.line,
            )
        return label_to_id[tag]

    return [
        (lookup(tag, word), lookup(_continuation_tag(tag), word) if label_all_subtokens else IGNORE_INDEX)
        for word, tag in enumerate(sentence.tags)
    ]


def _build_window(
    pieces: list[list[int]],
    labels: list[tuple[int, int]],
    span: tuple[int, int],
    tokenizer: PreTrainedTokenizerFast,
    sentence_index: int,
    responsible: list[int],
) -> NerWindow:
    input_ids, label_ids, word_ids = [tokenizer.cls_token_id], [IGNORE_INDEX], [None]
    for word in range(*span):
        first, continuation = labels[word]
        for piece_index, piece in enumerate(pieces[word]):
            input_ids.append(piece)
            label_ids.append(continuation if piece_index else first)
            word_ids.append(None if piece_index else word)
    input_ids.append(tokenizer.sep_token_id)
    label_ids.append(IGNORE_INDEX)
    word_ids.append(None)
    return NerWindow(input_ids, [0] * len(input_ids), label_ids, word_ids, sentence_index, responsible)


def encode_ner(
    sentences: Sequence[NerSentence],
    tokenizer: PreTrainedTokenizerFast,
    label_to_id: dict[str, int],
    max_length: int,
    stride: int,
    label_all_subtokens: bool = False,
) -> list[NerWindow]:
    """Sub-tokenize sentences and cut long ones into overlapping windows.

    Nothing is truncated: a sentence longer than ``max_length - 2`` sub-tokens is covered by
    windows that overlap by up to ``stride`` sub-tokens, so every word is scored with context
    on both sides by at least one window. Only the first sub-token of a word carries its label
    unless ``label_all_subtokens`` (then continuations get I-X for a B-X word).
    """
    budget = max_length - 2
    if budget < 1 or not 0 <= stride < budget:
        raise ConfigError(
            f"need max_length >= 3 and 0 <= stride < max_length - 2; got max_length={max_length}, stride={stride}"
        )
    if not sentences:
        return []
    windows: list[NerWindow] = []
    for index, (sentence, pieces) in enumerate(zip(sentences, _word_pieces(sentences, tokenizer), strict=True)):
        counts = [len(word_pieces) for word_pieces in pieces]
        for word, count in enumerate(counts):
            if count > budget:
                raise DataError(
                    f"word {word} ({sentence.words[word]!r}) has {count} sub-tokens, more than the {budget} "
                    f"that fit in a window of max_length={max_length}",
                    sentence.source,
                    sentence.line,
                )
        labels = _word_label_ids(sentence, label_to_id, label_all_subtokens)
        spans = _window_spans(counts, budget, stride)
        owners = _owners(spans, counts)
        for k, span in enumerate(spans):
            responsible = [word for word in range(*span) if owners[word] == k]
            windows.append(_build_window(pieces, labels, span, tokenizer, index, responsible))
    return windows


def merge_window_predictions(
    windows: Sequence[NerWindow], window_predictions: Sequence[Sequence[int]], num_sentences_words: Sequence[int]
) -> list[list[int]]:
    """One predicted label id per word, read at the word's first sub-token in its responsible
    window. Raises ValueError if windows and predictions do not line up, rather than returning
    sentences with gaps or double-counted words."""
    merged: list[list[int | None]] = [[None] * count for count in num_sentences_words]
    for window, predictions in zip(windows, window_predictions, strict=True):
        if len(predictions) < len(window.input_ids):
            raise ValueError(
                f"{len(predictions)} predictions for a window of {len(window.input_ids)} positions "
                f"(sentence {window.sentence_index})"
            )
        responsible = set(window.responsible_words)
        row = merged[window.sentence_index]
        for position, word in enumerate(window.word_ids):
            if word in responsible:
                if row[word] is not None:
                    raise ValueError(f"word {word} of sentence {window.sentence_index} is predicted twice")
                row[word] = int(predictions[position])
    for index, row in enumerate(merged):
        if None in row:
            raise ValueError(f"word {row.index(None)} of sentence {index} has no prediction")
    return merged  # type: ignore[return-value]  # every None was ruled out above
