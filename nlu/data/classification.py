"""Text classification data: CSV / TSV / JSONL / Hugging Face readers, label maps, splits and
encoding into plain feature dicts.

Every bad row is a :class:`~nlu.errors.DataError` naming ``path:line`` (physical lines, so a
quoted field spanning several lines does not shift later numbers), never a skipped row.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlu.data import dataset_source, read_json_lines, read_text, require_column
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


def _delimited_rows(path: str | PathLike, delimiter: str, columns: _Columns) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(first physical line, row)``; the header is required and checked first.

    The text is split on ``\\n`` only so that csv's ``line_num`` counts the same physical lines
    as an editor, while ``\\r\\n`` inside quoted fields survives untouched.
    """
    reader = csv.reader(io.StringIO(read_text(path), newline="\n"), delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header:
            raise DataError("expected a header line naming the columns (the file is empty or starts blank)", path, 1)
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise DataError(f"duplicate column(s) {', '.join(map(repr, duplicates))} in the header", path, 1)
        missing = [name for name in columns.required() if name not in header]
        if missing:
            raise DataError(
                f"no column {', '.join(map(repr, missing))} in the header; available: {', '.join(map(repr, header))}",
                path,
                1,
            )
        start = reader.line_num + 1
        for row in reader:
            if row:
                if len(row) != len(header):
                    raise DataError(f"{len(row)} fields, but the header has {len(header)}", path, start)
                yield start, dict(zip(header, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed {Path(path).suffix[1:].upper()}: {exc}", path, reader.line_num) from None


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
) -> list[TextExample]:
    """Read CSV (.csv) or TSV (.tsv) with a header line, or JSONL (.jsonl) objects.

    ``require_label=False`` is for unlabeled data to predict on: the label column may then be
    absent or empty, giving ``label=None``.
    """
    columns = _Columns(text_column, text_pair_column, label_column, require_label)
    suffix = Path(path).suffix.lower()
    if suffix in DELIMITERS:
        rows: Iterator[tuple[int, dict[str, Any]]] = _delimited_rows(path, DELIMITERS[suffix], columns)
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
    is_number = name.lstrip("-").isdigit()
    return (0, int(name), name) if is_number else (1, 0, name)


@dataclass(frozen=True)
class LabelMap:
    """Label names in id order. Saved beside a model so predictions map back to the same names."""

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

    def to_json(self, path: str | PathLike) -> None:
        text = json.dumps({"labels": list(self.names)}, indent=2, ensure_ascii=False)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | PathLike) -> LabelMap:
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None
        labels = data.get("labels") if isinstance(data, dict) else None
        if not isinstance(labels, list) or not labels or not all(isinstance(name, str) for name in labels):
            raise DataError('expected {"labels": [<label name>, ...]}', path)
        try:
            return cls(tuple(labels))
        except ConfigError as exc:
            raise DataError(str(exc), path) from None


def check_labels(examples: Sequence[TextExample], label_map: LabelMap, name: str) -> None:
    """Fail on a label the model has no output for, instead of a KeyError deep in encoding."""
    for example in examples:
        if example.label is not None and example.label not in label_map:
            raise DataError(
                f"label {example.label!r} in {name} is not one of the known labels: {', '.join(label_map.names)}",
                example.source,
                example.line,
            )


def stratified_split(
    examples: Sequence[TextExample], dev_fraction: float, seed: int
) -> tuple[list[TextExample], list[TextExample]]:
    """Split off a dev set with the same label proportions, for datasets shipped without one."""
    from sklearn.model_selection import train_test_split  # deferred: sklearn is slow to import

    if not 0 < dev_fraction < 1:
        raise ConfigError(f"dev_fraction must be between 0 and 1, got {dev_fraction}")
    for example in examples:
        if example.label is None:
            raise DataError("cannot stratify: example has no label", example.source, example.line)
    counts = Counter(example.label for example in examples)
    for example in examples:
        if counts[example.label] < 2:
            raise DataError(
                f"label {example.label!r} occurs only once, so it cannot be in both train and dev",
                example.source,
                example.line,
            )
    try:
        train, dev = train_test_split(
            list(examples), test_size=dev_fraction, random_state=seed, stratify=[e.label for e in examples]
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(examples)} examples with dev_fraction={dev_fraction}: {exc}") from exc
    return train, dev


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
    texts, pairs = [example.text for example in examples], _text_pairs(examples)
    full_lengths = [len(ids) for ids in tokenizer(texts, pairs)["input_ids"]]
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    features = [
        {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "label": None if example.label is None else label_map.to_id(example.label),
        }
        for example, input_ids, token_type_ids in zip(
            examples, encoded["input_ids"], encoded["token_type_ids"], strict=True
        )
    ]
    return features, sum(length > max_length for length in full_lengths)


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
