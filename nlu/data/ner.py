"""NER data: CoNLL / JSONL / Hugging Face readers, IOB2 validation and sub-word windows.

Readers return a :class:`NerFile` of :class:`NerSentence` records (every sentence of the input,
none skipped) and reject anything malformed with a :class:`~nlu.errors.DataError` that names
``path:line``: a silently skipped or mangled sentence shows up much later as a mysteriously low
F1, where it is far harder to trace. A :class:`NerFormat` says how tags become IOB2: IOB1
conversion, repair of stray I- tags, renaming or dropping entity types.

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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nlu.constants import IGNORE_INDEX
from nlu.data import dataset_source, read_json_lines, require_column
from nlu.data.text import read_text_lines
from nlu.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

DOCSTART = "-DOCSTART-"
TYPE_PATTERN = re.compile(r"[^\s-]|[^\s-]\S*[^\s-]")
"""An entity type: no spaces, and no '-' at either end (seqeval's strict and default modes read those differently)."""
TAG_PATTERN = re.compile(rf"O|[BI]-(?:{TYPE_PATTERN.pattern})")
SCHEMES = ("iob2", "iob1")
HUB_TIMEOUT_S = 3.0
HUB_SPLITS = {"dev": "validation"}
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
"""PAN-X's tag ids as XTREME numbers them, for exports that kept the ids (``Dataset.to_json``)."""
LANGUAGE_PREFIX = re.compile(r"([a-z]{2,3}):(?=.)")
"""The ``de:`` before every token of the raw PAN-X / WikiANN files."""
TRUTHY = ("1", "true", "yes", "on")


@dataclass
class NerSentence:
    """One sentence with its origin, so later stages can point back at the input.

    ``line`` is where the sentence starts (1-based); in CoNLL files (``word_per_line``) word ``i``
    is on line ``line + i``. For rows of a ``datasets.Dataset``, ``source`` names the dataset and
    ``line`` is the row index (as in ``ds[i]``).
    """

    words: list[str]
    tags: list[str]
    source: str
    line: int
    word_per_line: bool = False

    def texts(self) -> tuple[str, ...]:
        """What a vocabulary is trained on: the words joined by spaces."""
        return (" ".join(self.words),)

    def line_of(self, word: int) -> int:
        """Where word ``word`` is written, for a message about it."""
        return self.line + word if self.word_per_line else self.line


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

    def features(self, labelled: bool = True) -> dict[str, list[int]]:
        """What a collator (``pad_batch``, transformers' ``DataCollatorForTokenClassification``) reads."""
        inputs = {"input_ids": self.input_ids, "token_type_ids": self.token_type_ids}
        return inputs | {"labels": self.labels} if labelled else inputs


class IobRepairWarning(UserWarning):
    """Issued once per input when ``repair=True`` rewrote tags; ``count`` says how many."""

    def __init__(self, source: str, count: int):
        self.source = source
        self.count = count
        super().__init__(f"{source}: repaired {count} I- tag(s) that did not continue an entity (now B-)")


@dataclass(frozen=True)
class NerFormat:
    """How an input's tags become IOB2 over the entity types the model is to learn.

    ``scheme="iob1"`` declares IOB1 input (an entity starts with I-X; B-X only separates two
    adjacent X entities) and converts it to IOB2. ``repair`` is for IOB2 files with stray I-X
    tags: they become B-X with a warning. ``tag_map`` then renames entity types
    (``{"PERSON": "PER"}``); a type mapped to ``"O"`` is dropped, entity by entity. The CoNLL
    ``token_column`` / ``tag_column`` (negative: counted from the end) are picked on every line,
    so lines may carry different numbers of middle columns. ``language_prefix`` (``de``) reads the
    raw PAN-X files, which write every token as ``de:token``: a file whose tokens all carry it is read
    without it (counted), a file without it as it is; ``any`` removes whichever one code every token
    carries (nlu evaluate: a German tagger scored zero-shot on raw French files). ``comment_prefix``
    (``#``) skips the CoNLL lines that start with it (CoNLL-U, GermEval 2014's ``#<TAB>source``
    lines), counted; off by default, since ``#`` is also a token (tweets).
    """

    scheme: str = "iob2"
    repair: bool = False
    tag_map: Mapping[str, str] | None = None
    token_column: int = 0
    tag_column: int = -1
    language_prefix: str | None = None
    comment_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.comment_prefix is not None and (not isinstance(self.comment_prefix, str) or not self.comment_prefix.strip()):
            raise ConfigError(f"data.comment_prefix must be the text comment lines start with, e.g. '#'; got "
                              f"{self.comment_prefix!r}")
        if self.scheme not in SCHEMES:
            raise ConfigError(f"data.scheme must be one of {', '.join(SCHEMES)}; got {self.scheme!r}")
        if self.tag_map is None:
            return
        if not isinstance(self.tag_map, Mapping):
            raise ConfigError(f"data.tag_map must map entity types to types, e.g. {{PERSON: PER, OTH: O}}; "
                              f"got {self.tag_map!r}")
        for key, value in self.tag_map.items():
            if value is None and isinstance(key, str) and ":" in key:  # YAML reads {MISC:O} as the key 'MISC:O'
                type_, _, target = key.partition(":")
                raise ConfigError(f"data.tag_map: {key!r} has no value; YAML needs a space after the colon: "
                                  f"{{{type_}: {target}}} (on the command line, quoted: 'data.tag_map={{{type_}: {target}}}')")
            for name in (key, value):
                if not isinstance(name, str) or not TYPE_PATTERN.fullmatch(name) or name[:2] in ("B-", "I-"):
                    raise ConfigError(f"data.tag_map: {name!r} is not an entity type (a word such as PER, "
                                      f"without B-/I-)")
            if key == "O":
                raise ConfigError("data.tag_map: O is not an entity type; map types to O to drop them")


@dataclass
class NerFile:
    """Sentences of one input and what reading changed, for the run report.

    ``converted`` counts I- tags that opened an entity and became B- under ``scheme="iob1"``,
    ``repaired`` those rewritten by ``repair``; ``mapped[type]`` counts the entities of each
    ``tag_map`` type (after IOB2), renamed or, when mapped to O, dropped; ``unprefixed`` the tokens
    read without their PAN-X language prefix, ``comments`` the comment lines skipped.
    """

    sentences: list[NerSentence]
    source: str
    converted: int = 0
    repaired: int = 0
    mapped: dict[str, int] = field(default_factory=dict)
    unprefixed: int = 0
    comments: int = 0

    def changes(self, split: str = "") -> dict[str, int]:
        """What reading changed, as report figures: IOB1 conversions, repairs, removed language
        prefixes and skipped comment lines (those that happened)."""
        suffix = f" ({split})" if split else ""
        figures = {f"IOB1 entities converted{suffix}": self.converted, f"I- tags repaired{suffix}": self.repaired,
                   f"PAN-X language prefixes removed{suffix}": self.unprefixed,
                   f"comment lines skipped{suffix}": self.comments}
        return {key: value for key, value in figures.items() if value}


def mapping_figures(mapped: Mapping[str, int], tag_map: Mapping[str, str] | None, files: str = "") -> dict[str, int]:
    """The entities ``tag_map`` renamed or dropped, per type (``NerFile.mapped``, or their sum over the
    ``files`` named)."""
    suffix = f" ({files})" if files else ""
    return {f"entities {'dropped' if tag_map[entity] == 'O' else 'renamed'} by tag_map {entity} → {tag_map[entity]}"
            f"{suffix}": count for entity, count in mapped.items()} if tag_map else {}


# ---------------------------------------------------------------------------------------------
# Tags shared by all readers: IOB2 validation, IOB1 conversion, type mapping
# ---------------------------------------------------------------------------------------------


class _Reading:
    """One input read sentence by sentence into a :class:`NerFile`.

    An I- tag that opens an entity is an error in IOB2 unless converted or repaired; the error
    waits for the whole input, so it can say whether the file looks IOB1 (no entity opened by
    B-) and name the option that reads it.
    """

    def __init__(self, source: str, fmt: NerFormat, conll: bool = False):
        self.fmt, self.conll = fmt, conll
        self.file = NerFile([], source, mapped=dict.fromkeys(fmt.tag_map or {}, 0))
        self.first_i_start: tuple[str, str | None, int] | None = None
        self.i_starts = self.b_starts = 0

    def add(self, words: list[str], tags: list[str], lines: Sequence[int]) -> None:
        iob2: list[str] = []
        for tag, line in zip(tags, lines, strict=True):
            if not TAG_PATTERN.fullmatch(tag):
                hint = comment_hint(words[len(iob2)], self.fmt) if self.conll else ""
                raise DataError(f"tag {tag!r} is not O, B-<type> or I-<type> (a type has no spaces and does not start or "
                                f"end with '-'){hint}", self.file.source, line)
            previous = iob2[-1] if iob2 else None
            opens = tag != "O" and previous not in (f"B-{tag[2:]}", f"I-{tag[2:]}")
            if opens and tag.startswith("I-"):
                self.i_starts += 1
                if self.first_i_start is None:
                    self.first_i_start = (tag, previous, line)
                tag = f"B-{tag[2:]}"
            elif opens:
                self.b_starts += 1
            iob2.append(tag)
        self.file.sentences.append(NerSentence(words, self._mapped(iob2), self.file.source, lines[0],
                                               word_per_line=len(lines) > 1 and lines[1] != lines[0]))

    def _mapped(self, tags: list[str]) -> list[str]:
        tag_map = self.fmt.tag_map
        if not tag_map:
            return tags
        result = []
        for tag in tags:
            target = None if tag == "O" else tag_map.get(tag[2:])
            if target is None:
                result.append(tag)
                continue
            if tag.startswith("B-"):
                self.file.mapped[tag[2:]] += 1
            result.append("O" if target == "O" else f"{tag[:2]}{target}")
        return result

    def finish(self, empty: str) -> NerFile:
        """The file, once every sentence is in; ``empty`` says what an input without any is."""
        source = self.file.source
        if self.first_i_start is not None:
            if self.fmt.scheme == "iob1":
                self.file.converted = self.i_starts
            elif self.fmt.repair:
                self.file.repaired = self.i_starts
                warnings.warn(IobRepairWarning(source, self.i_starts), stacklevel=3)
            else:
                raise DataError(self._i_start_problem(), source, self.first_i_start[2])
        if not self.file.sentences:
            raise DataError(empty, source)
        self._language_prefix()
        return self.file

    def _language_prefix(self) -> None:
        """Remove the raw PAN-X ``de:`` prefix where ``language_prefix`` expects it on every token; a
        file whose every token carries one nobody asked for (or another language's) is refused, since
        each word's label would sit on its prefix."""
        sentences, expected = self.file.sentences, self.fmt.language_prefix
        codes = {match[1] if (match := LANGUAGE_PREFIX.match(word)) else None for s in sentences for word in s.words}
        found = next(iter(codes)) if len(codes) == 1 else None
        if found is not None and expected in (found, "any"):
            for sentence in sentences:
                sentence.words = [word[len(found) + 1:] for word in sentence.words]
                self.file.unprefixed += len(sentence.words)
        elif found is not None and sum(map(len, (s.words for s in sentences))) > 1:
            reading = (f"but PAN-X.{expected} is read here (data.panx_lang={expected})" if expected else
                       f"as in the raw PAN-X / WikiANN files; read them with data.panx_lang={found} "
                       f"data.local_dir=<their folder>, which removes the prefix")
            raise DataError(f"every token starts with '{found}:', {reading}", self.file.source, sentences[0].line)

    def _i_start_problem(self) -> str:
        tag, previous, _ = self.first_i_start  # type: ignore[misc]  # only called when set
        where = "at the start of a sentence" if previous is None else f"after {previous}"
        if not self.b_starts:
            return (f"{tag} {where}: this input looks like IOB1 ({self.i_starts:,} entities start with I-, and B- "
                    f"only follows an entity of the same type); set data.scheme=iob1 (nlu evaluate: --scheme iob1) "
                    "to convert it to IOB2")
        return (f"{tag} {where}: in IOB2 an entity starts with B-{tag[2:]} ({self.i_starts:,} entities here start "
                f"with I-); set data.repair=true (nlu evaluate: --repair) to turn such tags into B-, or "
                f"data.scheme=iob1 (--scheme iob1) if the file is IOB1")


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
        return [column for column in text.split(" ") if column]
    fields = [column.strip(" ") for column in text.split("\t")]
    for number, column in enumerate(fields, start=1):
        if not column:
            raise DataError(f"column {number} is empty", source, line)
    return fields


def comment_hint(first_column: str, fmt: NerFormat) -> str:
    """For an error on a line that may be a comment the reader was not told about."""
    return "; a comment line? data.comment_prefix='#' skips them" if first_column.startswith("#") and \
        fmt.comment_prefix is None else ""


def _conll_blocks(path: str | PathLike, comment_prefix: str | None) -> tuple[list[list[tuple[int, list[str]]]], int]:
    """Group ``(line_number, columns)`` into sentences; blank and -DOCSTART- lines end one. Comment
    lines (``comment_prefix``) are left out and counted; they do not end a sentence."""
    source = str(path)
    blocks: list[list[tuple[int, list[str]]]] = [[]]
    comments = 0
    for number, text in read_text_lines(path):
        if comment_prefix is not None and text.startswith(comment_prefix):
            comments += 1
            continue
        fields = _split_columns(text, source, number)
        if fields and fields[0] != DOCSTART:
            blocks[-1].append((number, fields))
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block], comments


def _token_and_tag(fields: list[str], fmt: NerFormat, source: str, line: int) -> tuple[str, str]:
    """The chosen columns of one line. Lines may differ in width (exports with 10 columns on
    some lines and 12 on others, token first and tag last), so the choice is made per line."""
    width = len(fields)
    if width < 2:
        raise DataError(f"only 1 column: expected a token and a tag (missing tag?){comment_hint(fields[0], fmt)}", source,
                        line)
    try:
        token, tag = range(width)[fmt.token_column], range(width)[fmt.tag_column]
    except IndexError:
        raise DataError(
            f"token_column={fmt.token_column} / tag_column={fmt.tag_column} do not exist in the {width} columns "
            f"of this line{comment_hint(fields[0], fmt)}",
            source,
            line,
        ) from None
    if token == tag:
        raise DataError(f"token_column and tag_column both select column {token + 1} of {width}", source, line)
    return fields[token], fields[tag]


def read_conll(path: str | PathLike, fmt: NerFormat = NerFormat()) -> NerFile:
    """Read a CoNLL-style file: one token per line, columns separated by tabs or spaces, a blank
    line (or -DOCSTART-) between sentences. Every token line ends up in exactly one sentence."""
    reading = _Reading(str(path), fmt, conll=True)
    blocks, reading.file.comments = _conll_blocks(path, fmt.comment_prefix)
    for block in blocks:
        words, tags = zip(*(_token_and_tag(fields, fmt, reading.file.source, line) for line, fields in block))
        reading.add(list(words), list(tags), [line for line, _ in block])
    return reading.finish("no sentences: the file is empty or holds only blank and -DOCSTART- lines")


# ---------------------------------------------------------------------------------------------
# JSONL and Hugging Face datasets
# ---------------------------------------------------------------------------------------------


def _tag_names(values: Any, label_names: Sequence[str] | None, name: str, source: str, line: int) -> list[str]:
    """Accept tag strings, or integer ids mapped through ``label_names``."""
    if not isinstance(values, list):
        raise DataError(f"{name!r} must be a list, got {type(values).__name__}", source, line)
    if all(isinstance(value, str) for value in values):
        return values
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        raise DataError(f"{name!r} must hold only strings or only integers", source, line)
    if label_names is None:
        raise DataError(f"{name!r} holds integer ids but no label names were given to map them", source, line)
    for value in values:
        if not 0 <= value < len(label_names):
            raise DataError(f"tag id {value} in {name!r} is outside 0..{len(label_names) - 1}", source, line)
    return [label_names[value] for value in values]


def _add_record(
    reading: _Reading, words: Any, tag_values: Any, label_names: Sequence[str] | None, fields: tuple[str, str],
    line: int,
) -> None:
    """Validate one JSON object or dataset row; ``fields`` are the (tokens, tags) field names."""
    tokens_field, tags_field = fields
    source = reading.file.source
    if not isinstance(words, list) or not all(isinstance(word, str) and word for word in words):
        raise DataError(f"{tokens_field!r} must be a list of non-empty strings", source, line)
    if not words:
        raise DataError(f"{tokens_field!r} is empty: a sentence needs at least one token", source, line)
    tags = _tag_names(tag_values, label_names, tags_field, source, line)
    if len(tags) != len(words):
        raise DataError(f"{len(words)} {tokens_field} but {len(tags)} {tags_field}", source, line)
    reading.add(words, tags, [line] * len(words))


def read_jsonl(
    path: str | PathLike, fmt: NerFormat = NerFormat(), *, label_names: Sequence[str] | None = None
) -> NerFile:
    """Read one ``{"tokens": [...], "ner_tags": [...]}`` object per line; integer tags are
    mapped through ``label_names``."""
    reading = _Reading(str(path), fmt)
    for line, record in read_json_lines(path):
        missing = [key for key in ("tokens", "ner_tags") if key not in record]
        if missing:
            raise DataError(f"missing key(s) {', '.join(missing)}; found {', '.join(record) or 'none'}", path, line)
        _add_record(reading, record["tokens"], record["ner_tags"], label_names, ("tokens", "ner_tags"), line)
    return reading.finish("no sentences: the file is empty")


def from_hf_dataset(
    ds: Any, tokens_field: str = "tokens", tags_field: str = "ner_tags", fmt: NerFormat = NerFormat()
) -> NerFile:
    """Read a ``datasets.Dataset``; a ``Sequence(ClassLabel)`` tags feature supplies the tag names."""
    from datasets import ClassLabel  # deferred: importing datasets costs a second for every user of nlu

    reading = _Reading(dataset_source(ds), fmt)
    require_column(ds, tokens_field)
    inner = getattr(require_column(ds, tags_field), "feature", None)
    label_names = inner.names if isinstance(inner, ClassLabel) else None
    for row, (words, tags) in enumerate(zip(ds[tokens_field], ds[tags_field], strict=True)):
        _add_record(reading, words, tags, label_names, (tokens_field, tags_field), row)
    return reading.finish("the dataset has no rows")


def read_ner(path: str | PathLike, fmt: NerFormat = NerFormat()) -> NerFile:
    """JSONL by its ``.jsonl`` extension, CoNLL columns otherwise (``.conll``, ``.txt``, ``.iob``...);
    PAN-X's files (``language_prefix`` given) may hold its tag ids."""
    if Path(path).suffix.lower() == ".jsonl":
        return read_jsonl(path, fmt, label_names=PANX_TAGS if fmt.language_prefix else None)
    return read_conll(path, fmt)


def read_ner_file(
    path: str | PathLike,
    *,
    repair: bool = False,
    scheme: str = "iob2",
    tag_map: Mapping[str, str] | None = None,
    token_column: int = 0,
    tag_column: int = -1,
) -> list[NerSentence]:
    """Just the sentences of :func:`read_ner`, for callers that need no reading report."""
    return read_ner(path, NerFormat(scheme, repair, tag_map, token_column, tag_column)).sentences


# ---------------------------------------------------------------------------------------------
# PAN-X
# ---------------------------------------------------------------------------------------------


def _local_files_hint(lang: str) -> str:
    return (
        f"To use PAN-X.{lang} without the hub, put its train, dev and test splits in one directory and pass "
        f"data.local_dir=<that directory> (or set it in the task file): train.conll, dev.conll, test.conll "
        f"(one token<TAB>tag per line, a blank line between sentences), .jsonl files with one "
        f'{{"tokens": [...], "ner_tags": [...]}} object per line, XTREME\'s raw files train, dev, test '
        f"({lang}:token<TAB>tag), or a folder saved by datasets' save_to_disk."
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


def local_split_source(directory: Path, split: str) -> Path | None:
    """Where one PAN-X split is read from under ``data.local_dir``: a folder saved by ``datasets``
    (``save_to_disk`` of the split into SPLIT/ or the hub's name for it, or of the whole dataset:
    DIRECTORY), else the first of SPLIT.conll, SPLIT.jsonl and XTREME's raw file SPLIT; None when
    none is there. Also how ``nlu evaluate`` tells a run's own training file."""
    name = HUB_SPLITS.get(split, split)
    saved = next((folder for folder in (directory / split, directory / name) if (folder / "dataset_info.json").is_file()),
                 directory if (directory / "dataset_dict.json").is_file() else None)
    return saved or next((path for path in local_split_candidates(directory, split) if path.is_file()), None)


def local_split_candidates(directory: Path, split: str) -> list[Path]:
    return [directory / f"{split}.conll", directory / f"{split}.jsonl", directory / split]


def _read_local_split(directory: Path, split: str, fmt: NerFormat) -> NerFile:
    """One split of PAN-X as a user has it offline (:func:`local_split_source`); the tag ids of
    .jsonl files and saved datasets are PAN-X's, the raw file's ``de:`` prefixes are removed."""
    source = local_split_source(directory, split)
    if source is None:
        raise DataError(f"found none of {', '.join(path.name for path in local_split_candidates(directory, split))}, "
                        "nor a dataset saved by datasets (dataset_dict.json)", directory)
    if source.is_file():
        return read_ner(source, fmt)
    from datasets import load_from_disk  # deferred: see from_hf_dataset

    if source != directory:
        return from_hf_dataset(load_from_disk(str(source)), fmt=fmt)
    splits, name = load_from_disk(str(directory)), HUB_SPLITS.get(split, split)
    if name not in splits:
        raise DataError(f"the saved dataset has no {name!r} split (it has {', '.join(splits)})", directory)
    return from_hf_dataset(splits[name], fmt=fmt)


def load_panx(lang: str, split: str, local_dir: str | PathLike | None = None, fmt: NerFormat = NerFormat()) -> NerFile:
    """PAN-X (WikiANN as packaged by XTREME) for ``lang``: from ``local_dir`` when given, else the hub.

    The hub is probed first so an offline machine gets instructions within seconds rather
    than a hang or a retry loop deep inside ``datasets``.
    """
    if local_dir is not None:
        return _read_local_split(Path(local_dir), split, replace(fmt, language_prefix=lang))
    reason = _hub_unavailable_reason()
    if reason is not None:
        raise DataError(f"cannot download PAN-X.{lang}: {reason}. {_local_files_hint(lang)}")
    from datasets import load_dataset  # deferred: see from_hf_dataset

    try:
        ds = load_dataset("xtreme", f"PAN-X.{lang}", split=HUB_SPLITS.get(split, split))
    except Exception as exc:  # network, hub and cache errors have no common base class
        raise DataError(f"cannot load PAN-X.{lang} {split} from the hub: {exc}. {_local_files_hint(lang)}") from exc
    return from_hf_dataset(ds, fmt=fmt)


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


def check_has_entities(train: Sequence[NerSentence]) -> None:
    """Refuse training data without a single entity: the tagger could only learn to predict O,
    and every later figure would be zero without saying why."""
    if train and label_list(train) == ["O"]:
        sources = ", ".join(sorted({sentence.source for sentence in train}))
        raise DataError(
            f"no entities: every tag of the {len(train):,} training sentences is O (after data.tag_map, if any), "
            f"so the tagger could only learn to predict O; set data.allow_no_entities=true if that is intended",
            sources,
        )


def check_columns(train: Sequence[NerSentence], fmt: NerFormat) -> None:
    """Refuse training data that reads as a column chosen wrong: one entity tag on every word (a
    placeholder column as the tags: every figure reads 1.0) or one word throughout (a placeholder
    as the tokens). No O at all is only said: word segmentation and slot filling tag every word."""
    words = [word for sentence in train for word in sentence.words]
    tags = Counter(tag for sentence in train for tag in sentence.tags)
    source = ", ".join(sorted({sentence.source for sentence in train}))
    column = f"is the tag column right (data.tag_column={fmt.tag_column}; the first tags read: " \
             f"{' '.join(train[0].tags[:5])})?" if train else ""
    if len(words) > 1 and len(tags) == 1 and "O" not in tags:
        raise DataError(f"every one of the {len(words):,} training words is tagged {next(iter(tags))}: a tagger could "
                        f"only learn that, and every figure would read 1.0; {column}", source)
    if len(words) > 1 and "O" not in tags:
        warnings.warn(f"{source}: none of the {len(words):,} training words is tagged O, so every word is part of an "
                      f"entity; if that is not the task, {column}", stacklevel=3)
    if len(words) > 1 and len(set(words)) == 1:
        raise DataError(f"every one of the {len(words):,} training words is {words[0]!r}: is the token column right "
                        f"(data.token_column={fmt.token_column})?", source)


def check_label_sets(train: Sequence[NerSentence], other: Sequence[NerSentence], other_name: str) -> None:
    """Fail if ``other`` uses tags the training data cannot teach: the model could never predict
    them and they would quietly count as errors."""
    known = set(label_list(train))
    first_seen: dict[str, tuple[str, int]] = {}
    for sentence in other:
        for word, tag in enumerate(sentence.tags):
            if tag not in known:
                first_seen.setdefault(tag, (sentence.source, sentence.line_of(word)))
    if first_seen:
        listing = ", ".join(f"{tag} (first at {source}:{line})" for tag, (source, line) in first_seen.items())
        problem = f"{other_name} has tags that never occur in the training data: {listing}"
        raise DataError(problem, *next(iter(first_seen.values())))


# ---------------------------------------------------------------------------------------------
# Sub-word encoding and windows
# ---------------------------------------------------------------------------------------------


def _word_pieces(sentences: Sequence[NerSentence], tokenizer: PreTrainedTokenizerFast) -> list[list[list[int]]]:
    """Sub-token ids per word per sentence (one batched tokenizer call).

    A word the tokenizer drops entirely (control or zero-width characters, a soft hyphen that the
    normaliser deletes) becomes the unknown token, so that it still owns a position and gets a
    prediction.
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
    context, so it counts as infinitely far. Ties go to the earlier window.

    Windows start and end in increasing order, so a word's windows are a run of consecutive
    ones; only those are looked at (linear in the words, not words x windows, on a long document).
    """
    offsets = [0, *accumulate(counts)]

    def context(span: tuple[int, int], word: int) -> float:
        start, end = span
        left = offsets[word] - offsets[start] if start > 0 else math.inf
        right = offsets[end] - offsets[word + 1] if end < len(counts) else math.inf
        return min(left, right)

    owners, first = [], 0
    for word in range(len(counts)):
        while spans[first][1] <= word:
            first += 1
        best = first
        for k in range(first + 1, len(spans)):
            if spans[k][0] > word:
                break
            if context(spans[k], word) > context(spans[best], word):
                best = k
        owners.append(best)
    return owners


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
                sentence.line_of(word),
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

    No sentence is truncated: one longer than ``max_length - 2`` sub-tokens is covered by
    windows that overlap by up to ``stride`` sub-tokens, so every word is scored with context
    on both sides by at least one window. A single word longer than a window (a hash, a run of
    symbols) keeps its first ``max_length - 2`` pieces, with a warning: its label sits on the first,
    so the word is still read and scored. Only the first sub-token of a word carries its label
    unless ``label_all_subtokens`` (then continuations get I-X for a B-X word). With a
    SentencePiece vocabulary that first piece may be a bare ``▁`` (XLM-R's for ``,`` is
    ``▁`` + ``,``); the label sits there, as with transformers' ``word_ids()`` alignment. Special
    tokens come from the tokenizer (``[CLS]``/``[SEP]`` or ``<s>``/``</s>``).
    """
    budget = max_length - 2
    if budget < 1 or not 0 <= stride < budget:
        raise ConfigError(
            f"need max_length >= 3 and 0 <= stride < max_length - 2; got max_length={max_length}, stride={stride}"
        )
    if not sentences:
        return []
    windows: list[NerWindow] = []
    cut: list[str] = []
    for index, (sentence, pieces) in enumerate(zip(sentences, _word_pieces(sentences, tokenizer), strict=True)):
        for word, word_pieces in enumerate(pieces):
            if len(word_pieces) > budget:
                cut.append(f"{sentence.source}:{sentence.line_of(word)}: word {word} ({shortened(sentence.words[word])}), "
                           f"{len(word_pieces)} sub-tokens")
                pieces[word] = word_pieces[:budget]
        counts = [len(word_pieces) for word_pieces in pieces]
        labels = _word_label_ids(sentence, label_to_id, label_all_subtokens)
        spans = _window_spans(counts, budget, stride)
        owners = _owners(spans, counts)
        for k, span in enumerate(spans):
            responsible = [word for word in range(*span) if owners[word] == k]
            windows.append(_build_window(pieces, labels, span, tokenizer, index, responsible))
    if cut:
        warnings.warn(f"{len(cut)} word(s) have more sub-tokens than a window of max_length={max_length} holds and "
                      f"are read from their first {budget} (the label sits on the first), e.g. {cut[0]}", stacklevel=2)
    return windows


def shortened(text: str, limit: int = 40) -> str:
    """``text`` quoted for a one-line message: its first ``limit`` characters and its length when longer."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


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
