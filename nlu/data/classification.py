"""Text classification data: CSV / TSV / JSONL / Hugging Face readers, label maps, splits and
encoding into plain feature dicts.

Every bad row is a :class:`~nlu.errors.DataError` naming ``path:line`` (physical lines, so a
quoted field spanning several lines does not shift later numbers), never a skipped row: rows in
equal examples out. CSV is read by RFC 4180 and malformed quoting is an error; TSV has no
quoting unless asked for.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlu.data import dataset_source, read_json_lines, require_column
from nlu.data.splits import MadeSplit, split_records
from nlu.data.text import LINE_BREAK, LineIndex, read_text, split_lines
from nlu.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

DELIMITERS = {".csv": ",", ".tsv": "\t"}


@dataclass
class TextExample:
    """One example and where it came from; for dataset rows ``line`` is the row index."""

    text: str
    text_pair: str | None
    label: str | None
    source: str
    line: int

    def texts(self) -> tuple[str, ...]:
        """What a vocabulary is trained on: the text, and the second text of a pair."""
        return (self.text,) if self.text_pair is None else (self.text, self.text_pair)


@dataclass(frozen=True)
class _Columns:
    text: str
    text_pair: str | None
    label: str
    require_label: bool

    def required(self) -> list[str]:
        names = [self.text, self.text_pair, self.label if self.require_label else None]
        return [name for name in names if name is not None]


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


def _csv_records(text: str, delimiter: str, path: str | PathLike) -> Iterator[tuple[int, list[str]]]:
    """RFC 4180 records as ``(first physical line, fields)``; blank lines are skipped.

    A field is either quoted — ``"..."`` with ``""`` for a quote, line breaks allowed inside and
    kept as written — or plain, holding no quote at all. Anything else (``"He said "hi" there"``,
    a quote inside a plain field, an unclosed quote) is an error at its line, never read as some
    guess of what was meant: ``csv``'s lenient dialect rewrites such fields or swallows rows.
    """
    index = LineIndex(text)
    plain = re.compile(f'[^"{re.escape(delimiter)}\r\n]*')
    end_of_field = (delimiter, "\r", "\n")
    position = 0
    while position < len(text):
        if text[position] in "\r\n":
            position = LINE_BREAK.match(text, position).end()  # type: ignore[union-attr]  # a break is here
            continue
        line, fields = index.line(position), []
        while True:
            if text.startswith('"', position):
                quoted = _QUOTED.match(text, position)
                if quoted is None:
                    raise DataError("a quoted field opens here and is never closed (RFC 4180)", path, index.line(position))
                fields.append(quoted.group(1).replace('""', '"'))
                position = quoted.end()
                if position < len(text) and text[position] not in end_of_field:
                    opened = index.line(quoted.start())
                    spans = "" if opened == index.line(position) else (
                        f" (the field opened on line {opened}: is a closing quote missing there?)")
                    raise DataError(
                        f"column {index.column(position)}: text after the closing quote of a quoted field{spans}; "
                        f'inside quotes write a quote as "" (RFC 4180)', path, index.line(position))
            else:
                field_match = plain.match(text, position)
                position = field_match.end()  # type: ignore[union-attr]  # the pattern matches the empty string
                if text.startswith('"', position):
                    raise DataError(
                        f'column {index.column(position)}: a quote inside an unquoted field; quote the whole field and '
                        f'write the quote as "" (RFC 4180)', path, index.line(position))
                fields.append(field_match.group())  # type: ignore[union-attr]
            if not text.startswith(delimiter, position):
                break
            position += len(delimiter)
        yield line, fields
        if position < len(text):
            position = LINE_BREAK.match(text, position).end()  # type: ignore[union-attr]  # a field ends at a break


def _tsv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Tab-separated lines, quotes being ordinary characters (a TSV has no quoting)."""
    for number, line in enumerate(split_lines(text), start=1):
        if line:
            yield number, line.split("\t")


def _delimited_rows(
    path: str | PathLike, delimiter: str, columns: _Columns, quoted: bool
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(first physical line, row)``; the header is required and checked first."""
    text = read_text(path)
    records = _csv_records(text, delimiter, path) if quoted else _tsv_records(text)
    first = next(records, None)
    if first is None or first[0] != 1:
        raise DataError("expected a header line naming the columns (the file is empty or starts blank)", path, 1)
    header = first[1]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"duplicate column(s) {', '.join(map(repr, duplicates))} in the header", path, 1)
    missing = [name for name in columns.required() if name not in header]
    if missing:
        other = next((name for mark, name in (("\t", "tab-separated: name it .tsv"), (",", "comma-separated: name it .csv"))
                      if mark != delimiter and len(header) == 1 and mark in header[0]), None)
        raise DataError(
            f"no column {', '.join(map(repr, missing))} in the header; available: {', '.join(map(repr, header))}"
            + (f" (one column: the file looks {other})" if other else ""),
            path,
            1,
        )
    for line, row in records:
        if len(row) != len(header):
            raise DataError(f"{len(row)} fields, but the header has {len(header)}", path, line)
        yield line, dict(zip(header, row))


def _text_field(record: dict[str, Any], column: str, source: str, line: int) -> str:
    if column not in record:
        raise DataError(f"missing key {column!r}; found {', '.join(map(repr, record)) or 'none'}", source, line)
    value = record[column]
    if not isinstance(value, str):
        raise DataError(f"{column!r} must be a string, got {type(value).__name__}", source, line)
    if not value.strip():
        raise DataError(f"empty {column!r}", source, line)
    return value


def _label_field(record: dict[str, Any], columns: _Columns, source: str, line: int) -> str | None:
    """Labels are strings; integer labels (common in JSON) become their decimal string."""
    value = record.get(columns.label)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is not None and not isinstance(value, str):
        raise DataError(
            f"label {columns.label!r} must be a string or integer, got {type(value).__name__}", source, line
        )
    if value is None or not value.strip():
        if columns.require_label:
            raise DataError(f"missing label {columns.label!r}", source, line)
        return None
    return value.strip()


def _example(record: dict[str, Any], columns: _Columns, source: str, line: int) -> TextExample:
    text = _text_field(record, columns.text, source, line)
    pair = None if columns.text_pair is None else _text_field(record, columns.text_pair, source, line)
    return TextExample(text, pair, _label_field(record, columns, source, line), source, line)


def read_table(
    path: str | PathLike,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    require_label: bool = True,
    *,
    tsv_quotes: bool = False,
) -> list[TextExample]:
    """Read CSV (.csv) or TSV (.tsv) with a header line, or JSONL (.jsonl) objects.

    CSV follows RFC 4180 strictly; TSV is split on tabs with quotes kept as text, unless
    ``tsv_quotes`` says the TSV quotes fields the CSV way. ``require_label=False`` is for
    unlabeled data to predict on: the label column may then be absent or empty, giving
    ``label=None``. Every non-blank row becomes an example or an error.
    """
    columns = _Columns(text_column, text_pair_column, label_column, require_label)
    suffix = Path(path).suffix.lower()
    if suffix in DELIMITERS:
        rows: Iterator[tuple[int, dict[str, Any]]] = _delimited_rows(
            path, DELIMITERS[suffix], columns, quoted=suffix == ".csv" or tsv_quotes
        )
    elif suffix == ".jsonl":
        rows = read_json_lines(path)
    else:
        raise DataError(f"unsupported file type {suffix or '(no extension)'!r}: use .csv, .tsv or .jsonl", path)
    examples = [_example(record, columns, str(path), line) for line, record in rows]
    if not examples:
        raise DataError("no examples" + (" after the header" if suffix in DELIMITERS else ""), path)
    return examples


def _class_name(value: Any, names: Sequence[str], source: str, row: int) -> str | None:
    """Map a ClassLabel id to its name; -1 is the datasets convention for "no label"."""
    if value == -1:
        return None
    if not 0 <= value < len(names):
        raise DataError(f"label id {value} is outside 0..{len(names) - 1}", source, row)
    return names[value]


def from_hf_dataset(
    ds: Any,
    text_column: str,
    label_column: str,
    text_pair_column: str | None = None,
    *,
    require_label: bool = True,
) -> list[TextExample]:
    """Read a ``datasets.Dataset``; a ``ClassLabel`` label feature supplies the label names."""
    from datasets import ClassLabel  # deferred: importing datasets costs a second for every user of nlu

    source = dataset_source(ds)
    columns = _Columns(text_column, text_pair_column, label_column, require_label)
    for column in columns.required():
        require_column(ds, column)
    feature = ds.features.get(label_column)
    names = feature.names if isinstance(feature, ClassLabel) else None
    examples = []
    for row, record in enumerate(ds):
        if names is not None:
            record[label_column] = _class_name(record[label_column], names, source, row)
        examples.append(_example(record, columns, source, row))
    if not examples:
        raise DataError("the dataset has no rows", source)
    return examples


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def _label_order(name: str) -> tuple[int, int, str]:
    """Integer-like labels sort numerically, so "2" comes before "10" and ids follow the scale."""
    is_number = re.fullmatch(r"-?[0-9]+", name) is not None  # ASCII digits: int() reads them, "²" or "--5" it does not
    return (0, int(name), name) if is_number else (1, 0, name)


@dataclass(frozen=True)
class LabelMap:
    """Label names in id order; a model keeps them as ``config.labels``, so predictions map back to the same names."""

    names: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        duplicates = sorted({name for name in self.names if self.names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"duplicate label name(s): {', '.join(duplicates)}")
        object.__setattr__(self, "_ids", {name: index for index, name in enumerate(self.names)})

    @classmethod
    def from_examples(cls, examples: Sequence[TextExample]) -> LabelMap:
        labels = {example.label for example in examples if example.label is not None}
        if not labels:
            raise DataError("no labeled examples to build a label set from")
        return cls(tuple(sorted(labels, key=_label_order)))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def to_id(self, name: str) -> int:
        return self._ids[name]

    def to_name(self, index: int) -> str:
        return self.names[index]


def check_labels(examples: Sequence[TextExample], label_map: LabelMap, name: str) -> None:
    """Fail on a label the model has no output for, instead of a KeyError deep in encoding."""
    for example in examples:
        if example.label is not None and example.label not in label_map:
            raise DataError(
                f"label {example.label!r} in {name} is not one of the known labels: {', '.join(label_map.names)}",
                example.source,
                example.line,
            )


def check_several_classes(examples: Sequence[TextExample], label_map: LabelMap) -> None:
    """Refuse training data with a single class: the classifier would learn to output it for
    everything, and score a perfect macro-F1 on data like it."""
    if len(label_map) == 1:
        sources = ", ".join(sorted({example.source for example in examples}))
        raise DataError(
            f"one class only: all {len(examples):,} training examples are labelled {label_map.names[0]!r}, so the "
            f"classifier could only learn to predict it; set data.allow_single_class=true if that is intended",
            sources,
        )


NUMBER = re.compile(r"[-+]?\d[\d.,]*")
MISSING_MARKERS = frozenset({"na", "n/a", "nan", "null", "missing"})
"""How R (NA), pandas (NaN) and spreadsheets write an empty cell, compared lower-cased."""


def check_text_column(examples: Sequence[TextExample], text_column: str) -> None:
    """Refuse training texts that read as a column chosen wrong: every one a number (an id column)
    or one text throughout. Either would let a classifier learn the label from a key, or nothing."""
    texts = [example.texts() for example in examples]  # a pair is one input: both its texts count
    sources = ", ".join(sorted({example.source for example in examples}))
    if len(texts) > 1 and all(NUMBER.fullmatch(part.strip()) for parts in texts for part in parts):
        raise DataError(f"every one of the {len(texts):,} training texts is a number "
                        f"({', '.join(' / '.join(parts) for parts in texts[:3])}, ...): is data.text_column="
                        f"{text_column!r} the column of the texts?", sources)
    if len(texts) > 1 and len(set(texts)) == 1:
        raise DataError(f"every one of the {len(texts):,} training texts is {' / '.join(texts[0])!r}: is "
                        f"data.text_column={text_column!r} the column of the texts?", sources)


def warn_doubtful_labels(examples: Sequence[TextExample]) -> None:
    """Labels that each train as a class of their own but may not be meant as one, said once with
    their counts and first line: one spelled as a missing value (R's NA, pandas' NaN), since the rows
    may be unlabelled, and labels that differ only in case ('No' and 'no')."""
    counts = Counter(example.label for example in examples if example.label is not None)
    first = {}
    for example in examples:
        first.setdefault(example.label, example)
    for label in (label for label in counts if label.strip().lower() in MISSING_MARKERS):
        warnings.warn(f"{first[label].source}:{first[label].line}: label {label!r} ({counts[label]:,} training rows) reads "
                      f"like a missing value (R writes NA, pandas NaN); it trains as a class of its own: if these rows "
                      f"have no label, leave them out of the file", stacklevel=2)
    spellings: dict[str, list[str]] = {}
    for label in counts:
        spellings.setdefault(label.strip().casefold(), []).append(label)
    for variants in (sorted(group, key=counts.get) for group in spellings.values() if len(group) > 1):
        rare = first[variants[0]]
        warnings.warn(f"{rare.source}:{rare.line}: labels " + ", ".join(
            f"{label!r} ({counts[label]:,} training row{'s' * (counts[label] != 1)})" for label in variants)
                      + " differ only in case; each trains as a class of its own: if they are one class, "
                        "spell it one way in the file", stacklevel=2)


def stratified_split(
    examples: Sequence[TextExample], fractions: Mapping[str, float], seed: int, source: str
) -> tuple[dict[str, list[TextExample]], dict[str, MadeSplit]]:
    """Split dev (and test) sets off ``examples`` class by class, for datasets shipped without
    them: every class with at least 2 examples is in dev (3: also in test), and a smaller class
    stays in training with a warning that names it (see :func:`~nlu.data.splits.split_records`)."""
    for example in examples:
        if example.label is None:
            raise DataError("cannot stratify: example has no label", example.source, example.line)
    return split_records(examples, [example.label for example in examples], fractions, seed, source, "examples")


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _text_pairs(examples: Sequence[TextExample]) -> list[str] | None:
    """All examples have a second text or none does; a mix means a broken pair dataset."""
    with_pair = [example.text_pair is not None for example in examples]
    if all(with_pair):
        return [example.text_pair for example in examples]  # type: ignore[misc]  # all are str here
    if any(with_pair):
        odd = examples[with_pair.index(not with_pair[0])]
        raise DataError("some examples have a second text and others do not", odd.source, odd.line)
    return None


def tokenize_cut(tokenizer: PreTrainedTokenizerFast, examples: Sequence[TextExample], max_length: int
                 ) -> tuple[dict[str, list[list[int]]], int]:
    """``input_ids``, ``token_type_ids`` and ``attention_mask`` of every example, cut to
    ``max_length`` as the tokenizer cuts (longest text first for pairs), and how many were cut.
    Texts are encoded once; only the cut ones again. Segment ids are asked for: XLM-R's tokenizer
    (multilingual-e5's) leaves them out by default, and a BERT model reads them."""
    texts, pairs = [example.text for example in examples], _text_pairs(examples)
    encoded = tokenizer(texts, pairs, return_token_type_ids=True, return_attention_mask=True)
    rows = {key: list(encoded[key]) for key in ("input_ids", "token_type_ids", "attention_mask")}
    long = [index for index, ids in enumerate(rows["input_ids"]) if len(ids) > max_length]
    if long:
        cut = tokenizer([texts[i] for i in long], pairs and [pairs[i] for i in long], truncation=True,
                        max_length=max_length, return_token_type_ids=True, return_attention_mask=True)
        for key, column in rows.items():
            for index, row in zip(long, cut[key]):
                column[index] = row
    return rows, len(long)


def encode_classification(
    examples: Sequence[TextExample],
    tokenizer: PreTrainedTokenizerFast,
    label_map: LabelMap,
    max_length: int,
) -> tuple[list[dict[str, Any]], int]:
    """Tokenize into ``{"input_ids", "token_type_ids", "label"}`` dicts (label None if unlabeled).

    Long inputs are truncated (longest text first for pairs), which is acceptable for
    classification; the number of truncated examples is returned so the caller can report it
    rather than cut text silently.
    """
    check_labels(examples, label_map, "the examples to encode")
    if not examples:
        return [], 0
    rows, cut = tokenize_cut(tokenizer, examples, max_length)
    features = [
        {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "label": None if example.label is None else label_map.to_id(example.label),
        }
        for example, input_ids, token_type_ids in zip(examples, rows["input_ids"], rows["token_type_ids"], strict=True)
    ]
    return features, cut


def sampler_weights(label_ids: Sequence[int], num_classes: int, power: float = 1.0) -> list[float]:
    """Per-example weights ``count(label) ** -power`` for ``torch.utils.data.WeightedRandomSampler``.

    ``power=1`` draws every class equally often, ``power=0`` keeps the data's proportions and
    values in between soften the imbalance without repeating rare examples as often.
    """
    counts = Counter(label_ids)
    outside = sorted(label for label in counts if not 0 <= label < num_classes)
    if outside:
        raise ValueError(f"label ids {outside} are outside 0..{num_classes - 1}")
    return [counts[label] ** -power for label in label_ids]
