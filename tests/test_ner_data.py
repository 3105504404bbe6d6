"""NER readers, IOB2 validation, sub-word windows and merging predictions back to words."""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
from transformers import BertTokenizerFast

from nlu.data import ner
from nlu.data.ner import (
    IGNORE_INDEX,
    IobRepairWarning,
    NerFormat,
    NerSentence,
    check_label_sets,
    encode_ner,
    from_hf_dataset,
    label_list,
    load_panx,
    merge_window_predictions,
    read_conll,
    read_jsonl,
    read_ner,
    read_ner_file,
)
from nlu.errors import ConfigError, DataError

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "cat", "sat", "on", "mat", "john", "lives", "in", "new", "york", "play", "un", "x",
    "##s", "##ing", "##ed", "##able", "##ly", "##x",
]  # fmt: skip
ONE_PIECE = ["the", "cat", "sat", "on", "mat", "john", "lives", "in", "new", "york", "zzz"]
MULTI_PIECE = ["cats", "playing", "played", "unable", "playingly", "xxxxx"]  # 2, 2, 2, 2, 3, 5 pieces
NO_PIECE = ["\u200b", "\x00"]


@pytest.fixture(scope="module")
def tokenizer(wordpiece_tokenizer) -> BertTokenizerFast:
    return wordpiece_tokenizer(VOCAB)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def sentence(words: list[str], tags: list[str] | None = None, line: int = 1) -> NerSentence:
    return NerSentence(words, tags or ["O"] * len(words), "mem.conll", line)


# ---------------------------------------------------------------------------------------------
# read_conll
# ---------------------------------------------------------------------------------------------


def test_read_conll_sentences_lines_and_docstart(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train.conll",
        "-DOCSTART-\tO\n\nJohn\tB-PER\nlives\tO\n\n\n\nin\tO\nNew\tB-LOC\nYork\tI-LOC\n"
        "-DOCSTART-\tO\nthe\tO\n\ncat\tO",  # DOCSTART ends a sentence; last one has no newline
    )
    sentences = read_conll(path).sentences
    assert [s.words for s in sentences] == [["John", "lives"], ["in", "New", "York"], ["the"], ["cat"]]
    assert sentences[1].tags == ["O", "B-LOC", "I-LOC"]
    assert [s.line for s in sentences] == [3, 8, 12, 14]
    assert {s.source for s in sentences} == {str(path)}


def test_read_conll_space_separated_columns_and_unicode_tokens(tmp_path: Path) -> None:
    path = write(tmp_path, "c.conll", "EU NNP B-NP B-ORG\n  rejects VBZ B-VP O  \na\u00a0b\u200b X X O\r\n")
    (only,) = read_conll(path).sentences
    assert only.words == ["EU", "rejects", "a\u00a0b\u200b"]  # NBSP / zero-width stay inside the token
    assert only.tags == ["B-ORG", "O", "O"]


def test_read_conll_choose_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "c.tsv", "B-PER\tJohn\t1\nO\truns\t2\n")
    (only,) = read_conll(path, NerFormat(token_column=1, tag_column=0)).sentences
    assert only.words == ["John", "runs"] and only.tags == ["B-PER", "O"]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a\tO\n\nb\n", 3, "missing tag"),
        ("a\tO\nb\t\n", 2, "missing tag"),
        ("a\n", 1, "only 1 column"),
        ("a\t\tO\n", 1, "column 2 is empty"),
        ("a\tO\nb\tE-PER\n", 2, "'E-PER' is not O, B-<type> or I-<type>"),
        ("a\tO\n\nb\tB-\n", 3, "'B-'"),
        ("a\tB-PER-\n", 1, "does not start or end with '-'"),  # seqeval's two modes read 'PER-' apart
        ("a\tB--PER\n", 1, "'B--PER'"),
        ("a\tX\n", 1, "'X'"),
        ("a\tO\nb\tI-PER\n", 2, "I-PER after O"),
        ("a\tO\n\nb\tI-PER\n", 3, "I-PER at the start of a sentence"),
        ("a\tB-LOC\nb\tI-PER\n", 2, "I-PER after B-LOC"),
        ("a\tB-LOC\nb\tI-LOC\nc\tI-PER\n", 3, "I-PER after I-LOC"),
    ],
)
def test_read_conll_errors_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str, fails_at) -> None:
    fails_at(read_conll, write(tmp_path, "bad.conll", text), line, fragment)


def test_read_conll_column_options_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "c.conll", "a\tO\n")
    with pytest.raises(DataError, match=r"c\.conll:1: token_column=0 / tag_column=5"):
        read_conll(path, NerFormat(tag_column=5))
    with pytest.raises(DataError, match="both select column 2"):
        read_conll(path, NerFormat(token_column=1))


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- O\n\n"])
def test_read_conll_without_sentences_is_an_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "empty.conll", text)
    with pytest.raises(DataError, match=f"^{path}: no sentences"):
        read_conll(path)


def test_read_conll_reports_bad_bytes_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conll"
    path.write_bytes(b"a\tO\n\ncaf\xe9\tO\n")
    with pytest.raises(DataError, match=r"latin1\.conll:3: not valid UTF-8"):
        read_conll(path)
    with pytest.raises(DataError, match="nope.conll: file not found"):
        read_conll(tmp_path / "nope.conll")


def test_repair_turns_iob1_into_iob2_and_counts(tmp_path: Path) -> None:
    path = write(tmp_path, "iob1.conll", "a\tI-PER\nb\tI-PER\nc\tO\nd\tI-LOC\ne\tB-LOC\nf\tI-PER\n\ng\tI-ORG\n")
    with pytest.warns(IobRepairWarning) as record:
        first, second = read_conll(path, NerFormat(repair=True)).sentences
    assert first.tags == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-PER"]
    assert second.tags == ["B-ORG"]
    assert len(record) == 1 and record[0].message.count == 4
    assert str(path) in str(record[0].message)


def test_valid_iob2_needs_no_repair(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    read_conll(write(tmp_path, "ok.conll", "a\tB-PER\nb\tI-PER\nc\tB-PER\n"), NerFormat(repair=True))
    assert not [w for w in recwarn if issubclass(w.category, IobRepairWarning)]


# ---------------------------------------------------------------------------------------------
# Real-world layouts: variable middle columns, IOB1, tag maps (issues 17 and 22)
# ---------------------------------------------------------------------------------------------


def test_lines_with_10_and_12_columns_token_first_tag_last(tmp_path: Path) -> None:
    """A raw export: some lines carry two more feature columns than others."""
    ten = ["東京", *[f"f{i}" for i in range(8)], "B-LOC"]
    twelve = ["タワー", *[f"f{i}" for i in range(10)], "I-LOC"]
    path = write(tmp_path, "raw.tsv", "\t".join(ten) + "\n" + "\t".join(twelve) + "\n\n" + " ".join(ten[:-1]) + " O\n")
    first, second = read_conll(path).sentences
    assert (first.words, first.tags) == (["東京", "タワー"], ["B-LOC", "I-LOC"])
    assert (second.words, second.tags, second.line) == (["東京"], ["O"], 4)


def test_conll_2003_layout(tmp_path: Path) -> None:
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n"
    (only,) = read_conll(write(tmp_path, "eng.train", text)).sentences
    assert only.words == ["EU", "rejects", "German"] and only.tags == ["B-ORG", "O", "B-MISC"]


IOB1_TEXT = "Mr I-PER\nJohn I-PER\nSmith I-PER\nJane B-PER\nmet O\nin O\nNew I-LOC\nYork I-LOC\nEU I-ORG\n"
HAND_CONVERTED = ["B-PER", "I-PER", "I-PER", "B-PER", "O", "O", "B-LOC", "I-LOC", "B-ORG"]


def test_iob1_is_converted_to_iob2_when_declared(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    read = read_conll(write(tmp_path, "iob1.conll", IOB1_TEXT), NerFormat(scheme="iob1"))
    assert read.sentences[0].tags == HAND_CONVERTED
    assert (read.converted, read.repaired) == (3, 0)  # Mr, New and EU opened entities with I-
    assert not recwarn.list  # declared, so no repair warning
    iob2 = write(tmp_path, "iob2.conll", "a B-PER\nb I-PER\nc B-PER\n")
    assert read_conll(iob2, NerFormat(scheme="iob1")).sentences[0].tags == ["B-PER", "I-PER", "B-PER"]


def test_iob1_file_without_the_option_says_which_option_reads_it(tmp_path: Path) -> None:
    path = write(tmp_path, "iob1.conll", "x O\n\n" + IOB1_TEXT)
    with pytest.raises(DataError) as caught:
        read_conll(path)
    assert str(caught.value) == (
        f"{path}:3: I-PER at the start of a sentence: this input looks like IOB1 (3 entities start with I-, and B- "
        f"only follows an entity of the same type); set data.scheme=iob1 (nlu evaluate: --scheme iob1) to convert it "
        f"to IOB2"
    )


def test_stray_i_tag_in_iob2_file_hints_the_command_line_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "stray.conll", "a B-PER\nb O\nc I-LOC\n")
    with pytest.raises(DataError, match=r"stray\.conll:3: I-LOC after O: in IOB2 an entity starts with B-LOC .*"
                                        r"set data\.repair=true \(nlu evaluate: --repair\) to turn such tags into "
                                        r"B-, or data\.scheme=iob1 \(--scheme iob1\)"):
        read_conll(path)


def test_tag_map_renames_and_drops_types_and_counts_entities(tmp_path: Path) -> None:
    text = ("Anna B-PERSON\nSchmidt I-PERSON\nin O\nBerliner B-LOCderiv\nStil O\nvon O\nAcme B-ORG\n\n"
            "Ecce B-OTH\nhomo I-OTH\nBob B-PERSON\nEve B-PERSON\n")
    tag_map = {"PERSON": "PER", "OTH": "O", "LOCderiv": "O", "GPE": "LOC"}
    read = read_conll(write(tmp_path, "de.conll", text), NerFormat(tag_map=tag_map))
    assert [s.tags for s in read.sentences] == [
        ["B-PER", "I-PER", "O", "O", "O", "O", "B-ORG"],
        ["O", "O", "B-PER", "B-PER"],
    ]
    assert read.mapped == {"PERSON": 3, "OTH": 1, "LOCderiv": 1, "GPE": 0}
    assert label_list(read.sentences) == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_tag_map_applies_after_iob1_conversion(tmp_path: Path) -> None:
    read = read_conll(write(tmp_path, "ru.conll", "a I-PERSON\nb I-PERSON\nc I-MISC\n"),
                      NerFormat(scheme="iob1", tag_map={"PERSON": "PER", "MISC": "O"}))
    assert read.sentences[0].tags == ["B-PER", "I-PER", "O"] and read.mapped == {"PERSON": 1, "MISC": 1}


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"scheme": "bio"}, "data.scheme must be one of iob2, iob1; got 'bio'"),
        ({"tag_map": ["PER"]}, "data.tag_map must map entity types to types"),
        ({"tag_map": {"B-PER": "PER"}}, "'B-PER' is not an entity type"),
        ({"tag_map": {"PER": "new type"}}, "'new type' is not an entity type"),
        ({"tag_map": {"O": "PER"}}, "O is not an entity type"),
        ({"tag_map": {"MISC:O": None}}, "'MISC:O' has no value; YAML needs a space after the colon: {MISC: O}"),
    ],
)
def test_bad_format_options_are_config_errors(options: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NerFormat(**options)
    assert fragment in str(caught.value)


def test_read_ner_file_keeps_its_signature_and_takes_the_new_options(tmp_path: Path) -> None:
    path = write(tmp_path, "x.conll", "a I-PERSON\nb I-PERSON\n")
    assert read_ner_file(path, scheme="iob1", tag_map={"PERSON": "PER"})[0].tags == ["B-PER", "I-PER"]
    with pytest.warns(IobRepairWarning):
        assert read_ner_file(path, repair=True)[0].tags == ["B-PERSON", "I-PERSON"]


# ---------------------------------------------------------------------------------------------
# Slices of the real multilingual files (../shared/data, absent on most machines)
# ---------------------------------------------------------------------------------------------

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ner-multilingual"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (shared multilingual NER files)")
GERMEVAL_TO_PANX = {kind: "O" for kind in ["OTH", *(f"{t}{s}" for t in ("PER", "ORG", "LOC", "OTH")
                                                    for s in ("deriv", "part"))]}


@needs_shared
def test_russian_train_file_read_as_iob1(tmp_path: Path) -> None:
    read = read_ner(SHARED / "ru" / "train.txt", NerFormat(scheme="iob1"))
    assert len(read.sentences) == 9_840  # the README's count
    assert sum(len(s.words) for s in read.sentences) == 169_110
    assert read.converted == 15_837
    for s in read.sentences:  # IOB2: every I-X continues an X
        assert all(t[:2] != "I-" or (i and s.tags[i - 1][2:] == t[2:]) for i, t in enumerate(s.tags))
    first = read.sentences[0]  # hand-converted: Пьер Кюри / Мария Склодовская-Кюри are two PER entities after O
    assert first.tags[3:9] == ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O"]
    ninth = next(s for s in read.sentences if s.line <= 1568 < s.line + len(s.words))
    index = 1568 - ninth.line  # "Смоленской B-LOC" right after "Ярцевского района I-LOC I-LOC" stays B-LOC
    assert ninth.tags[index - 2:index + 2] == ["B-LOC", "I-LOC", "B-LOC", "I-LOC"]
    head = (SHARED / "ru" / "train.txt").read_text(encoding="utf-8").split("\n\n")[0] + "\n"  # its first sentence
    with pytest.raises(DataError, match=r"ru\.txt:4: I-PER after O: this input looks like IOB1 .*data\.scheme=iob1"):
        read_ner(write(tmp_path, "ru.txt", head))


@needs_shared
def test_german_dev_file_with_a_panx_tag_map() -> None:
    read = read_ner(SHARED / "de" / "dev.txt", NerFormat(tag_map=GERMEVAL_TO_PANX))
    assert len(read.sentences) == 2_200 and sum(len(s.words) for s in read.sentences) == 41_653
    assert label_list(read.sentences) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert read.mapped["OTH"] == 269 and read.mapped["LOCderiv"] == 235 and sum(read.mapped.values()) == 704
    raw = read_ner(SHARED / "de" / "dev.txt")
    kept = Counter(t for s in raw.sentences for t in s.tags if t[:2] == "B-" and t[2:] in ("PER", "ORG", "LOC"))
    assert kept == Counter(t for s in read.sentences for t in s.tags if t[:2] == "B-")


# ---------------------------------------------------------------------------------------------
# read_jsonl / from_hf_dataset
# ---------------------------------------------------------------------------------------------


def jsonl(tmp_path: Path, *records: object) -> Path:
    lines = [record if isinstance(record, str) else json.dumps(record) for record in records]
    return write(tmp_path, "data.jsonl", "\n".join(lines) + "\n")


def test_read_jsonl_string_and_integer_tags(tmp_path: Path) -> None:
    john = {"tokens": ["John", "runs"], "ner_tags": ["B-PER", "O"]}
    path = jsonl(tmp_path, john, "", {"tokens": ["Paris"], "ner_tags": ["B-LOC"]})
    first, second = read_jsonl(path).sentences
    assert (first.words, first.tags, first.line) == (["John", "runs"], ["B-PER", "O"], 1)
    assert (second.tags, second.line) == (["B-LOC"], 3)
    path = jsonl(tmp_path, {"tokens": ["John", "Smith"], "ner_tags": [1, 2]})
    assert read_jsonl(path, label_names=["O", "B-PER", "I-PER"]).sentences[0].tags == ["B-PER", "I-PER"]


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ({"tokens": ["a"]}, "missing key(s) ner_tags; found tokens"),
        ({"tokens": ["a", "b"], "ner_tags": ["O"]}, "2 tokens but 1 ner_tags"),
        ({"tokens": [], "ner_tags": []}, "'tokens' is empty"),
        ({"tokens": ["a", ""], "ner_tags": ["O", "O"]}, "'tokens' must be a list of non-empty strings"),
        ({"tokens": "a b", "ner_tags": ["O"]}, "'tokens' must be a list"),
        ({"tokens": ["a"], "ner_tags": [0]}, "integer ids but no label names"),
        ({"tokens": ["a", "b"], "ner_tags": ["O", 1]}, "only strings or only integers"),
        ({"tokens": ["a"], "ner_tags": ["I-PER"]}, "I-PER at the start of a sentence"),
    ],
)
def test_read_jsonl_errors_name_file_and_line(tmp_path: Path, record: object, fragment: str) -> None:
    path = jsonl(tmp_path, {"tokens": ["ok"], "ner_tags": ["O"]}, record)
    with pytest.raises(DataError) as caught:
        read_jsonl(path)
    assert str(caught.value).startswith(f"{path}:2: ")
    assert fragment in str(caught.value)


def test_read_jsonl_integer_tag_out_of_range(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"tokens": ["a"], "ner_tags": [3]})
    with pytest.raises(DataError, match=r"data\.jsonl:1: tag id 3 .* outside 0\.\.1"):
        read_jsonl(path, label_names=["O", "B-PER"])


def test_read_jsonl_repairs_with_warning(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"tokens": ["a", "b"], "ner_tags": ["O", "I-PER"]})
    with pytest.warns(IobRepairWarning, match="repaired 1"):
        assert read_jsonl(path, NerFormat(repair=True)).sentences[0].tags == ["O", "B-PER"]


def ner_dataset(tags: list[list[int]], names: list[str]) -> Dataset:
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))})
    tokens = [[f"w{i}" for i in range(len(row))] for row in tags]
    return Dataset.from_dict({"tokens": tokens, "ner_tags": tags}, features=features, split="train")


def test_from_hf_dataset_takes_names_from_class_label() -> None:
    ds = ner_dataset([[1, 2, 0], [0]], ["O", "B-PER", "I-PER"])
    first, second = from_hf_dataset(ds).sentences
    assert first.tags == ["B-PER", "I-PER", "O"] and second.tags == ["O"]
    assert (first.source, first.line, second.line) == ("hf:dataset[train]", 0, 1)


def test_from_hf_dataset_string_tags_and_validation() -> None:
    features = Features({"words": Sequence(Value("string")), "labels": Sequence(Value("string"))})
    ds = Dataset.from_dict({"words": [["a"], ["b"]], "labels": [["B-X"], ["I-X"]]}, features=features)
    with pytest.raises(DataError, match=r"^hf:dataset:1: I-X at the start"):
        from_hf_dataset(ds, "words", "labels")
    with pytest.raises(DataError, match="no column 'ner_tags'; the dataset has words, labels"):
        from_hf_dataset(ds, "words")


# ---------------------------------------------------------------------------------------------
# load_panx
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_load_panx_from_local_conll_and_jsonl(tmp_path: Path, no_network: None) -> None:
    write(tmp_path, "train.conll", "Berlin\tB-LOC\n")
    jsonl(tmp_path, {"tokens": ["Anna"], "ner_tags": ["B-PER"]}).rename(tmp_path / "dev.jsonl")
    assert load_panx("de", "train", local_dir=tmp_path).sentences[0].words == ["Berlin"]
    assert load_panx("de", "dev", local_dir=str(tmp_path)).sentences[0].tags == ["B-PER"]
    with pytest.raises(DataError, match=f"^{tmp_path}: found none of test.conll, test.jsonl, test, nor a dataset"):
        load_panx("de", "test", local_dir=tmp_path)


GERMEVAL = ("#\thttp://de.wikipedia.org/wiki/Manfred_Korfmann [2009-10-17]\n1\tManfred\tB-PER\tO\n2\tKorfmann\tI-PER\tO\n"
            "3\tlebt\tO\tO\n\n#\thttp://x [2009]\n1\t#\tO\tO\n2\tBonn\tB-LOC\tB-LOCderiv\n")
"""GermEval 2014 as published: a '#' source line before each sentence, then index, token, outer and inner tag."""


def test_comment_lines_are_skipped_and_counted_only_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path, "germeval.tsv", GERMEVAL)
    read = read_conll(path, NerFormat(token_column=1, tag_column=2, comment_prefix="#"))
    assert [s.words for s in read.sentences] == [["Manfred", "Korfmann", "lebt"], ["#", "Bonn"]]
    assert [s.line for s in read.sentences] == [2, 7] and read.changes() == {"comment lines skipped": 2}
    with pytest.raises(DataError, match=rf"^{path}:1: token_column=1 / tag_column=2 do not exist in the 2 columns of "
                                        r"this line; a comment line\? data.comment_prefix='#' skips them$"):
        read_conll(path, NerFormat(token_column=1, tag_column=2))
    with pytest.raises(DataError, match=r":1: tag 'http://de.wikipedia.org/wiki/Manfred_Korfmann \[2009-10-17\]' is "
                                        r"not O, .*; a comment line\? data.comment_prefix='#' skips them$"):
        read_conll(path)  # the default columns: the comment's text read as a tag
    with pytest.raises(ConfigError, match="data.comment_prefix must be the text comment lines start with"):
        NerFormat(comment_prefix=" ")


def test_a_hash_given_on_the_command_line_is_text_not_a_yaml_comment() -> None:
    from nlu.settings import load_settings

    assert load_settings(None, ["task=ner", "data.comment_prefix=#"]).data["comment_prefix"] == "#"
    from nlu.cli import typed

    assert typed("#") == "#" and typed("3") == 3 and typed("") is None  # nlu sweep's overrides read the same way


RAW_PANX = "de:Angela\tB-PER\nde:Merkel\tI-PER\nde:sprach\tO\n\nde:in\tO\nde:Berlin\tB-LOC\nde:http://x.de\tO\n"
"""XTREME's raw PAN-X lines: the language before every token (the colon inside a token stays)."""


def test_load_panx_reads_xtreme_raw_files_without_their_language_prefix(tmp_path: Path, no_network: None) -> None:
    write(tmp_path, "train", RAW_PANX)
    read = load_panx("de", "train", local_dir=tmp_path)
    assert [s.words for s in read.sentences] == [["Angela", "Merkel", "sprach"], ["in", "Berlin", "http://x.de"]]
    assert [s.tags for s in read.sentences][1] == ["O", "B-LOC", "O"]
    assert read.changes("train") == {"PAN-X language prefixes removed (train)": 6}
    write(tmp_path, "dev", "fr:Paris\tB-LOC\nfr:est\tO\n")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'dev'}:1: every token starts with 'fr:', but PAN-X.de is read "
                                        r"here \(data.panx_lang=de\)"):
        load_panx("de", "dev", local_dir=tmp_path)


def test_a_panx_tagger_reads_raw_files_of_any_language_and_their_tag_ids(tmp_path: Path) -> None:
    """nlu evaluate with a PAN-X tagger (language_prefix any): zero-shot on French raw files, and
    JSONL exports that kept PAN-X's tag ids; a one-token file is too little to refuse."""
    french = write(tmp_path, "test", "fr:Paris\tB-LOC\nfr:est\tO\n")
    read = read_ner(french, NerFormat(language_prefix="any"))
    assert read.sentences[0].words == ["Paris", "est"] and read.unprefixed == 2
    ids = jsonl(tmp_path, {"tokens": ["Anna", "lacht"], "ner_tags": [1, 0]})
    assert read_ner(ids, NerFormat(language_prefix="any")).sentences[0].tags == ["B-PER", "O"]
    with pytest.raises(DataError, match="integer ids but no label names"):
        read_ner(ids)  # not a PAN-X model: ids of an unknown label set are not guessed
    assert read_conll(write(tmp_path, "one.conll", "tel:+49301234\tO\n")).sentences[0].words == ["tel:+49301234"]


def test_raw_panx_file_read_as_plain_conll_is_refused_with_the_fix(tmp_path: Path) -> None:
    """Read as it is, each word's label would sit on its "de" sub-token: every word would look alike."""
    path = write(tmp_path, "train.conll", "-DOCSTART-\tO\n\n" + RAW_PANX)
    with pytest.raises(DataError, match=rf"^{path}:3: every token starts with 'de:', as in the raw PAN-X / WikiANN "
                                        r"files; read them with data.panx_lang=de data.local_dir="):
        read_conll(path)
    # A prefix on some tokens only is text (a file already without prefixes, or a URL-like word): read as written.
    mixed = write(tmp_path, "mixed.conll", "de:Berlin\tB-LOC\nliegt\tO\n")
    for fmt in (NerFormat(), NerFormat(language_prefix="de")):
        assert read_conll(mixed, fmt).sentences[0].words == ["de:Berlin", "liegt"]


def test_load_panx_reads_jsonl_tag_ids_and_a_saved_dataset(tmp_path: Path, no_network: None) -> None:
    """The forms a user brings PAN-X in from a machine with the hub: Dataset.to_json (tag ids) and
    DatasetDict.save_to_disk (ids with their ClassLabel names)."""
    exported = tmp_path / "exported"
    exported.mkdir()
    jsonl(exported, {"tokens": ["Anna", "in", "Köln"], "ner_tags": [1, 0, 5], "langs": ["de"] * 3}).rename(
        exported / "train.jsonl")
    assert load_panx("de", "train", local_dir=exported).sentences[0].tags == ["B-PER", "O", "B-LOC"]
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=list(ner.PANX_TAGS)))})
    rows = {"tokens": [["die", "UNO", "tagt"]], "ner_tags": [[0, 3, 0]]}
    saved = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_dict(rows, features=features),
                 "validation": Dataset.from_dict(rows, features=features)}).save_to_disk(str(saved))
    assert load_panx("de", "dev", local_dir=saved).sentences[0].tags == ["O", "B-ORG", "O"]
    with pytest.raises(DataError, match=f"^{saved}: the saved dataset has no 'test' split \\(it has train, validation\\)"):
        load_panx("de", "test", local_dir=saved)
    per_split = tmp_path / "per_split"  # each split saved on its own, dev under the hub's name for it
    Dataset.from_dict(rows, features=features).save_to_disk(str(per_split / "validation"))
    assert load_panx("de", "dev", local_dir=per_split).sentences[0].words == ["die", "UNO", "tagt"]


@pytest.mark.parametrize("variable", ["HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"])
def test_load_panx_offline_explains_local_files(
    monkeypatch: pytest.MonkeyPatch, no_network: None, variable: str
) -> None:
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(DataError) as caught:
        load_panx("fr", "train")
    message = str(caught.value)
    assert f"{variable} is set" in message
    assert "PAN-X.fr" in message and "train.conll, dev.conll, test.conll" in message and "fr:token" in message
    assert "pass data.local_dir=<that directory> (or set it in the task file)" in message  # an option nlu takes


def test_load_panx_unreachable_hub_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    timeouts: list[float] = []

    def unreachable(address: tuple[str, int], timeout: float) -> None:
        timeouts.append(timeout)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(DataError, match=r"cannot reach hub\.invalid .*Network is unreachable.*local_dir="):
        load_panx("de", "dev")
    assert timeouts and max(timeouts) <= 5


def test_load_panx_hanging_probe_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(ner, "HUB_TIMEOUT_S", 0.2)
    release = threading.Event()

    def hang(*args: object, **kwargs: object) -> None:
        release.wait(10)
        raise OSError("released by the test")

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.monotonic()
    try:
        with pytest.raises(DataError, match="no answer"):
            load_panx("de", "dev")
        assert time.monotonic() - started < 2
    finally:
        release.set()


# ---------------------------------------------------------------------------------------------
# Label sets
# ---------------------------------------------------------------------------------------------


def test_label_list_order_and_completion() -> None:
    sentences = [sentence(["a", "b", "c"], ["B-PER", "I-PER", "B-LOC"]), sentence(["d"], ["B-MISC"])]
    assert label_list(sentences) == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-PER", "I-PER"]
    assert label_list([sentence(["a"])]) == ["O"]


def test_check_label_sets_names_tags_and_the_line_each_is_first_on(tmp_path: Path) -> None:
    train = [sentence(["a"], ["B-PER"])]
    (tmp_path / "dev.conll").write_text("a B-PER\nb I-PER\n\nc O\nx B-LOC\n\nd B-ORG\ne B-LOC\n")
    dev = read_conll(tmp_path / "dev.conll").sentences
    with pytest.raises(DataError) as caught:
        check_label_sets(train, dev, "dev")
    message, where = str(caught.value), tmp_path / "dev.conll"
    assert message.startswith(f"{where}:5: dev has tags that never occur in the training data")
    assert f"B-LOC (first at {where}:5), B-ORG (first at {where}:7)" in message
    check_label_sets(train, dev[:1], "dev")  # I-PER is implied by B-PER
    jsonl = [NerSentence(["c", "x"], ["O", "B-LOC"], "dev.jsonl", 3)]  # a record's words share its line
    with pytest.raises(DataError, match=r"^dev\.jsonl:3: dev has tags .* B-LOC \(first at dev\.jsonl:3\)$"):
        check_label_sets(train, jsonl, "dev")


# ---------------------------------------------------------------------------------------------
# encode_ner
# ---------------------------------------------------------------------------------------------

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
LABEL_TO_ID = {tag: index for index, tag in enumerate(LABELS)}


def test_encode_labels_first_sub_token(tokenizer: BertTokenizerFast) -> None:
    s = sentence(["john", "playing", "in", "new", "york"], ["B-PER", "O", "O", "B-LOC", "I-LOC"])
    (window,) = encode_ner([s], tokenizer, LABEL_TO_ID, max_length=32, stride=4)
    assert tokenizer.convert_ids_to_tokens(window.input_ids) == [
        "[CLS]", "john", "play", "##ing", "in", "new", "york", "[SEP]"
    ]  # fmt: skip
    assert window.labels == [IGNORE_INDEX, 3, 0, IGNORE_INDEX, 0, 1, 2, IGNORE_INDEX]
    assert window.word_ids == [None, 0, 1, None, 2, 3, 4, None]
    assert window.token_type_ids == [0] * 8
    assert (window.sentence_index, window.responsible_words) == (0, [0, 1, 2, 3, 4])


def test_encode_label_all_subtokens_continues_entities(tokenizer: BertTokenizerFast) -> None:
    s = sentence(["cats", "playing", "xxxxx"], ["B-PER", "I-PER", "O"])
    (window,) = encode_ner([s], tokenizer, LABEL_TO_ID, max_length=32, stride=4, label_all_subtokens=True)
    # cat ##s | play ##ing | x ##x ##x ##x ##x
    assert window.labels == [IGNORE_INDEX, 3, 4, 4, 4, 0, 0, 0, 0, 0, IGNORE_INDEX]
    assert window.word_ids == [None, 0, None, 1, None, 2, None, None, None, None, None]


def test_words_without_sub_tokens_become_unk(tokenizer: BertTokenizerFast) -> None:
    s = sentence(["the", "\u200b", "cat", "\x00"], ["O", "B-PER", "O", "B-LOC"])
    (window,) = encode_ner([s], tokenizer, LABEL_TO_ID, max_length=16, stride=2)
    assert tokenizer.convert_ids_to_tokens(window.input_ids) == ["[CLS]", "the", "[UNK]", "cat", "[UNK]", "[SEP]"]
    assert window.word_ids == [None, 0, 1, 2, 3, None]
    assert merge_window_predictions([window], [window.labels], [4]) == [[0, 3, 0, 1]]


def test_sliding_windows_overlap_and_responsibility(tokenizer: BertTokenizerFast) -> None:
    s = sentence(ONE_PIECE[:10])
    windows = encode_ner([s], tokenizer, LABEL_TO_ID, max_length=8, stride=4)
    # 6 sub-tokens per window; each next window keeps the last 4 of the previous one.
    assert [[w for w in window.word_ids if w is not None] for window in windows] == [
        [0, 1, 2, 3, 4, 5], [2, 3, 4, 5, 6, 7], [4, 5, 6, 7, 8, 9]
    ]  # fmt: skip
    # Word 3 has 2 tokens of context on its nearer side in window 0 but 1 in window 1; word 4
    # has 1 in window 0 and 2 in window 1 (window 2 starts at it); the last window reaches the
    # sentence end, so its right side is never cut.
    assert [window.responsible_words for window in windows] == [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9]]


@pytest.mark.parametrize(("max_length", "stride"), [(6, 4), (2, 0)])
def test_encode_rejects_impossible_windows(tokenizer: BertTokenizerFast, max_length: int, stride: int) -> None:
    with pytest.raises(ConfigError, match="0 <= stride < max_length - 2"):
        encode_ner([sentence(["the", "cat"])], tokenizer, LABEL_TO_ID, max_length=max_length, stride=stride)


def test_a_word_longer_than_a_window_is_read_from_its_first_pieces(tokenizer: BertTokenizerFast) -> None:
    """A hash or a run of symbols in a text to tag: one warning naming it, and every word still predicted."""
    s = NerSentence(["the", "xxxxx", "cat", "xxxxx"], ["O", "B-PER", "O", "O"], "long.conll", 7)
    with pytest.warns(UserWarning, match=r"^2 word\(s\) have more sub-tokens than a window of max_length=6 holds and "
                                         r"are read from their first 4 \(the label sits on the first\), e\.g\. long\.conll:7: "
                                         r"word 1 \('xxxxx'\), 5 sub-tokens$"):
        windows = encode_ner([s], tokenizer, LABEL_TO_ID, max_length=6, stride=1)
    pieces = tokenizer.tokenize("xxxxx")
    assert len(pieces) == 5
    assert [tokenizer.convert_ids_to_tokens(w.input_ids)[1:-1] for w in windows] == [["the"], pieces[:4], ["cat"],
                                                                                       pieces[:4]]
    assert windows[1].labels[1:-1] == [LABEL_TO_ID["B-PER"]] + [IGNORE_INDEX] * 3
    assert merge_window_predictions(windows, [w.labels for w in windows], [4]) == [[0, LABEL_TO_ID["B-PER"], 0, 0]]


def test_encode_rejects_unknown_tags(tokenizer: BertTokenizerFast) -> None:
    s = NerSentence(["the", "cat"], ["O", "B-ORG"], "dev.conll", 12)
    with pytest.raises(DataError, match=r"^dev\.conll:12: tag 'B-ORG' \(word 1, 'cat'\) is not in the label set"):
        encode_ner([s], tokenizer, LABEL_TO_ID, max_length=16, stride=2)
    with pytest.raises(DataError, match="tag 'I-X'"):
        encode_ner([sentence(["cats"], ["B-X"])], tokenizer, {"O": 0, "B-X": 1}, 16, 2, label_all_subtokens=True)


def random_sentence(rng: random.Random) -> NerSentence:
    words = rng.choices(ONE_PIECE + MULTI_PIECE + NO_PIECE, weights=[6] * 11 + [2] * 6 + [1] * 2, k=rng.randint(1, 60))
    tags: list[str] = []
    for _ in words:
        previous = tags[-1] if tags else "O"
        options = ["O", "B-LOC", "B-PER"] + ([f"I-{previous[2:]}"] if previous != "O" else [])
        tags.append(rng.choice(options))
    return NerSentence(words, tags, "random.conll", 1)


def position_words(window: ner.NerWindow) -> list[int]:
    """The word of every sub-token between [CLS] and [SEP] (continuations included)."""
    words: list[int] = []
    for word in window.word_ids[1:-1]:
        words.append(word if word is not None else words[-1])
    return words


@pytest.mark.parametrize(("max_length", "stride"), [(7, 0), (7, 4), (9, 3), (12, 9), (16, 7), (64, 16)])
@pytest.mark.parametrize("label_all_subtokens", [False, True])
def test_windows_cover_every_word_once(
    tokenizer: BertTokenizerFast, max_length: int, stride: int, label_all_subtokens: bool
) -> None:
    rng = random.Random(max_length * 100 + stride)
    sentences = [random_sentence(rng) for _ in range(120)]
    windows = encode_ner(sentences, tokenizer, LABEL_TO_ID, max_length, stride, label_all_subtokens)
    whole = encode_ner(sentences, tokenizer, LABEL_TO_ID, max_length=1000, stride=0)
    assert len(whole) == len(sentences)
    pieces = [Counter(position_words(window)) for window in whole]

    responsible = [[0] * len(s.words) for s in sentences]
    for previous, window in zip([None, *windows], windows):
        assert len(window.input_ids) <= max_length
        assert window.input_ids[0] == tokenizer.cls_token_id and window.input_ids[-1] == tokenizer.sep_token_id
        assert len(window.labels) == len(window.word_ids) == len(window.input_ids) == len(window.token_type_ids)
        counts = Counter(position_words(window))
        assert list(counts) == list(range(min(counts), max(counts) + 1))  # consecutive words ...
        assert all(counts[w] == pieces[window.sentence_index][w] for w in counts)  # ... never cut
        assert set(window.responsible_words) <= set(counts)
        for word in window.responsible_words:
            responsible[window.sentence_index][word] += 1
        if previous is not None and previous.sentence_index == window.sentence_index:
            before = set(position_words(previous))
            assert min(counts) > min(before)  # each window moves forward
            assert sum(counts[w] for w in counts if w in before) <= stride
    assert all(count == 1 for row in responsible for count in row)

    gold = [[LABEL_TO_ID[tag] for tag in s.tags] for s in sentences]
    merged = merge_window_predictions(windows, [w.labels for w in windows], [len(s.words) for s in sentences])
    assert merged == gold


def test_merge_rejects_mismatched_predictions(tokenizer: BertTokenizerFast) -> None:
    windows = encode_ner([sentence(ONE_PIECE[:10])], tokenizer, LABEL_TO_ID, max_length=8, stride=4)
    labels = [w.labels for w in windows]
    with pytest.raises(ValueError):
        merge_window_predictions(windows, labels[:-1], [10])
    with pytest.raises(ValueError, match="3 predictions for a window of 8 positions"):
        merge_window_predictions(windows, [labels[0], labels[1][:3], labels[2]], [10])
    with pytest.raises(ValueError, match="word 10 of sentence 0 has no prediction"):
        merge_window_predictions(windows, labels, [11])


# ---------------------------------------------------------------------------------------------
# Splits made from one file (nlu.tasks.ner.load_data)
# ---------------------------------------------------------------------------------------------


def numbered_conll(tmp_path: Path, name: str, count: int) -> Path:
    """``count`` two-word sentences, sentence i being "w<i> <entity>" (each an entity)."""
    return write(tmp_path, name, "".join(f"w{i}\tO\nE{i}\tB-PER\n\n" for i in range(count)))


def test_dev_split_from_the_training_file_is_seeded_disjoint_complete_and_saved(tmp_path: Path) -> None:
    from nlu.tasks.ner import NerData, load_data

    train, test = numbered_conll(tmp_path, "dev.txt", 50), numbered_conll(tmp_path, "test.txt", 7)
    data = NerData(train=str(train), dev=None, test=str(test), dev_fraction=0.2, split_seed=3)
    splits = load_data(data)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (40, 10, 7)
    lines = [s.line for s in splits.train], [s.line for s in splits.dev]
    assert set(lines[0]).isdisjoint(lines[1]) and sorted(lines[0] + lines[1]) == list(range(1, 150, 3))
    assert lines[1] == sorted(lines[1])  # file order kept
    assert [s.line for s in load_data(data).dev] == lines[1]  # same seed, same split
    assert [s.line for s in load_data(NerData(**{**vars(data), "split_seed": 4})).dev] != lines[1]
    assert splits.summary() == {
        "train split": f"40 sentences of {train}",
        "dev split": f"10 of the 50 sentences of {train}, drawn with data.split_seed=3 (dev_fraction 0.2; lines in "
                     f"data_splits.json)",
        "test split": f"7 sentences of {test}",
    }
    record = json.loads(splits.save(tmp_path).read_text())
    assert record["dev"]["lines"] == lines[1] and record["train"] == {"source": str(train), "lines": lines[0]}
    assert (record["dev"]["seed"], record["dev"]["fraction"], record["dev"]["of"]) == (3, 0.2, 50)


def test_dev_and_test_split_from_one_file(tmp_path: Path) -> None:
    from nlu.tasks.ner import NerData, load_data

    only = numbered_conll(tmp_path, "all.txt", 100)
    splits = load_data(NerData(train=str(only), dev=None, test=None, dev_fraction=0.1, test_fraction=0.2))
    parts = [[s.line for s in part] for part in (splits.train, splits.dev, splits.test)]
    assert [len(part) for part in parts] == [70, 10, 20]
    assert sorted(sum(parts, [])) == list(range(1, 300, 3))  # every sentence in exactly one split
    assert "20 of the 100 sentences" in splits.summary()["test split"]


def test_panx_takes_files_set_to_null() -> None:
    from nlu.tasks.ner import NerData

    assert NerData(panx_lang="de", train=None, dev=None, test=None).panx_lang == "de"


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"test_fraction": 0.2}, ConfigError, "data.test names a test file and data.test_fraction asks to split one"),
        ({"test": None}, ConfigError, "data.test must name a test file, or set data.test_fraction"),
        ({"test": None, "test_fraction": 0.5, "dev": None, "dev_fraction": 0.5}, ConfigError,
         "data.dev_fraction + data.test_fraction = 1 leaves nothing to train on"),
        ({"test": None, "test_fraction": 0.0}, ConfigError, "data.test_fraction must be between 0 and 1"),
        ({"panx_lang": "de", "test_fraction": 0.1, **{split: f"data/ner/wnut16/{split}.conll" for split in
                                                      ("train", "dev", "test")}},  # the defaults: not named
         ConfigError, "PAN-X (data.panx_lang) has its own test split"),
        ({"panx_lang": "de"}, ConfigError, "so data.train="),  # the user's files would be unused (null is none)
        ({"train": "ONE", "dev": None, "dev_fraction": 0.5}, DataError,
         "1 sentences are too few to split off data.dev_fraction=0.5"),
    ],
)
def test_split_option_errors(tmp_path: Path, options: dict, error: type, fragment: str) -> None:
    from nlu.tasks.ner import NerData, load_data

    files = {"train": str(numbered_conll(tmp_path, "t.txt", 5)), "dev": str(numbered_conll(tmp_path, "d.txt", 2)),
             "test": str(numbered_conll(tmp_path, "e.txt", 2))}
    if options.get("train") == "ONE":
        options = {**options, "train": str(numbered_conll(tmp_path, "one.txt", 1))}
    with pytest.raises(error) as caught:
        load_data(NerData(**{**files, **options}))
    assert fragment in str(caught.value)


def test_loader_reports_conversions_and_tag_map_counts(tmp_path: Path) -> None:
    from nlu.tasks.ner import NerData, load_data

    train = write(tmp_path, "train.txt", "a I-PERSON\nb I-PERSON\nc I-OTH\n\nd I-PERSON\n")
    test = write(tmp_path, "test.txt", "e I-PERSON\nf O\ng I-OTH\n")
    data = NerData(train=str(train), dev=str(train), test=str(test), scheme="iob1",
                   tag_map={"PERSON": "PER", "OTH": "O", "TYPO": "O"})
    with pytest.warns(UserWarning, match="data.tag_map: no entity of type TYPO in the files read"):
        splits = load_data(data)
    assert splits.mapped == {"PERSON": 5, "OTH": 3, "TYPO": 0}  # train 2 + dev 2 (same file) + test 1; OTH 1+1+1
    summary = splits.summary()
    assert summary["IOB1 entities converted (train)"] == 3 and summary["IOB1 entities converted (test)"] == 2
    assert summary["entities renamed by tag_map PERSON → PER (train + dev + test)"] == 5
    assert summary["entities dropped by tag_map OTH → O (train + dev + test)"] == 3
    assert splits.save(tmp_path) is None  # nothing was split, nothing to record
    with pytest.raises(ConfigError, match="data.scheme must be one of iob2, iob1"):
        NerData(scheme="IOB")


def test_a_type_with_one_or_two_entities_beside_a_common_one_is_named_where_it_is(tmp_path: Path) -> None:
    """A misspelt tag (B-PERSONN) would otherwise train as a type of its own without a word."""
    from nlu.tasks.ner import NerData, load_data

    body = "".join("Ali B-PER\nsaid O\n\n" for _ in range(20)) + "Veli B-PER\nmet O\nAyşe B-PERSONN\n"
    train = write(tmp_path, "train.txt", body)
    with pytest.warns(UserWarning, match=rf"^{re.escape(str(train))}:63: entity type 'PERSONN' occurs 1 time\(s\) in the "
                                         r"training data, against 21 of PER: a typo\?"):
        load_data(NerData(train=str(train), dev=str(train), test=str(train)))
    few = write(tmp_path, "few.txt", "".join("Ali B-PER\nsaid O\n\n" for _ in range(19)) + "Ayşe B-PERSONN\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 19 against 1: too little data to call either common
        load_data(NerData(train=str(few), dev=str(few), test=str(few)))
