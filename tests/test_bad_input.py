"""Bad and unusual input files (issue 19): every line accounted for, or one error naming file:line.

Each case here was read wrongly or silently before: CR-only files read as one line, a BOM or a
NUL byte glued to a word, a TSV quote swallowing rows, a malformed CSV field rewritten, one-class
and entity-free training data accepted. The readers under test are the public ones the tasks
and the CLI use.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlu.data.classification import read_table
from nlu.data.corpus import read_documents
from nlu.data.ner import read_ner_file
from nlu.data.text import read_text_lines
from nlu.errors import DataError
from nlu.tasks import classify, ner


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
# Line endings: \n, \r\n and a lone \r, alone or mixed, give the same records and line numbers
# ---------------------------------------------------------------------------------------------

ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


@pytest.mark.parametrize("ending", ENDINGS)
def test_conll_line_endings(tmp_path: Path, ending: str) -> None:
    eol = ENDINGS[ending]
    text = eol.join(["John\tB-PER", "lives\tO", "", "in\tO", "New\tB-LOC", "York\tI-LOC", "", ""])
    sentences = read_ner_file(write_bytes(tmp_path, "x.conll", text.encode()))
    assert [s.words for s in sentences] == [["John", "lives"], ["in", "New", "York"]]
    assert [s.tags for s in sentences] == [["B-PER", "O"], ["O", "B-LOC", "I-LOC"]]
    assert [s.line for s in sentences] == [1, 4]


def test_conll_mixed_line_endings_count_lines_like_an_editor(tmp_path: Path) -> None:
    # "\n\r" is a line feed, then a lone carriage return: a blank line 3 between the sentences
    path = write_bytes(tmp_path, "mixed.conll", b"a\tO\r\nb\tB-PER\n\rc\tO\rd\tB-LOC\r\n\r\ne\tO")
    sentences = read_ner_file(path)
    assert [(s.words, s.line) for s in sentences] == [(["a", "b"], 1), (["c", "d"], 4), (["e"], 7)]


def test_cr_only_conll_error_names_the_right_line(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "cr.conll", b"a\tO\rb\tO\r\rc\tX\r")
    with pytest.raises(DataError, match=r"cr\.conll:4: tag 'X' is not O"):
        read_ner_file(path)


@pytest.mark.parametrize("ending", ENDINGS)
def test_csv_tsv_jsonl_line_endings(tmp_path: Path, ending: str) -> None:
    eol = ENDINGS[ending]
    csv_path = write_bytes(tmp_path, "a.csv", eol.join(["text,label", "good,pos", "", "bad,neg", ""]).encode())
    tsv_path = write_bytes(tmp_path, "a.tsv", eol.join(["text\tlabel", "good\tpos", "", "bad\tneg", ""]).encode())
    records = [json.dumps({"text": "good", "label": "pos"}), "", json.dumps({"text": "bad", "label": "neg"}), ""]
    jsonl_path = write_bytes(tmp_path, "a.jsonl", eol.join(records).encode())
    for path, lines in ((csv_path, [2, 4]), (tsv_path, [2, 4]), (jsonl_path, [1, 3])):
        examples = read_table(path)
        assert [(e.text, e.label, e.line) for e in examples] == [("good", "pos", lines[0]), ("bad", "neg", lines[1])]


def test_csv_quoted_field_keeps_its_own_line_breaks(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "q.csv", b'text,label\r"one\rtwo\r\nthree",pos\rnext,neg\r')
    first, second = read_table(path)
    assert (first.text, first.line) == ("one\rtwo\r\nthree", 2)
    assert (second.text, second.line) == ("next", 5)


@pytest.mark.parametrize("ending", ENDINGS)
def test_corpus_line_endings(tmp_path: Path, ending: str) -> None:
    eol = ENDINGS[ending]
    path = write_bytes(tmp_path, "c.txt", eol.join(["One.", "Two.", "", "Three.", ""]).encode())
    documents = read_documents([path])
    assert [(d.sentences, d.line) for d in documents] == [(["One.", "Two."], 1), (["Three."], 4)]


def test_read_text_lines_keeps_unicode_separators_inside_lines(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "u.txt", "a\u2028b\x85c\x1cd\ne\r\rf".encode())
    assert read_text_lines(path) == [(1, "a\u2028b\x85c\x1cd"), (2, "e"), (3, ""), (4, "f")]
    assert read_text_lines(write_bytes(tmp_path, "empty.txt", b"")) == []


# ---------------------------------------------------------------------------------------------
# BOM, NUL, invalid UTF-8, paths that are not files
# ---------------------------------------------------------------------------------------------


def test_bom_at_the_start_is_dropped_everywhere(tmp_path: Path) -> None:
    bom = "\ufeff".encode()
    assert read_ner_file(write_bytes(tmp_path, "b.conll", bom + b"a\tB-PER\n"))[0].words == ["a"]
    assert read_table(write_bytes(tmp_path, "b.csv", bom + b"text,label\nx,y\n"))[0].text == "x"
    assert read_text_lines(write_bytes(tmp_path, "b.txt", bom + b"first\r\nsecond"))[0] == (1, "first")


@pytest.mark.parametrize(
    ("name", "data", "line", "fragment"),
    [
        ("a.conll", "a\tO\n\ufeffb\tO\n".encode(), 2, "column 1: a byte-order mark (U+FEFF) after the start"),
        ("a.conll", b"a\tO\nb\x00c\tO\n", 2, "column 2: a NUL byte"),
        ("a.csv", b"text,label\rgood,pos\rnul\x00,neg\r", 3, "column 4: a NUL byte"),
        ("a.jsonl", b'{"text": "a", "label": "x"}\n\x00\n', 2, "a NUL byte"),
        ("a.conll", b"a\tO\rcaf\xe9\tO\r", 2, "not valid UTF-8 (byte 0xe9) at byte 4 of the line"),
        ("a.tsv", b"text\tlabel\r\n\xff\tx\r\n", 2, "not valid UTF-8 (byte 0xff)"),
        ("utf16.conll", "a\tO\n".encode("utf-16-le"), 1, "NUL byte"),
    ],
)
def test_refused_bytes_name_file_line_and_column(tmp_path: Path, name: str, data: bytes, line: int,
                                                 fragment: str) -> None:
    path = write_bytes(tmp_path, name, data)
    read = read_ner_file if name.endswith(".conll") else read_table
    with pytest.raises(DataError) as caught:
        read(path)
    assert str(caught.value).startswith(f"{path}:{line}: ") and fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_corpus_and_predict_input_refuse_nul_and_inner_bom(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"c\.txt:3: column 5: a NUL byte"):
        read_documents([write_bytes(tmp_path, "c.txt", b"One.\n\nTwo.\x00\n")])
    with pytest.raises(DataError, match=r"p\.txt:2: column 1: a byte-order mark"):
        read_text_lines(write_bytes(tmp_path, "p.txt", "first\n\ufeffsecond\n".encode()))


def test_missing_path_and_directory_are_one_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    for read in (read_ner_file, read_table, read_text_lines, lambda path: read_documents([path])):
        with pytest.raises(DataError, match=f"^{folder}: is a directory, not a file$"):
            read(folder)
    with pytest.raises(DataError, match=r"missing\.csv: file not found$"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"missing\.conll: file not found$"):
        read_ner_file(tmp_path / "missing.conll")


# ---------------------------------------------------------------------------------------------
# Quoting: TSV has none unless asked; CSV by RFC 4180, malformed quoting refused
# ---------------------------------------------------------------------------------------------


def test_tsv_quotes_are_text_and_every_row_is_read(tmp_path: Path) -> None:
    rows = ['"Quoted" start\tpos', "second\tneg", 'a "middle" one\tpos', 'trailing "\tneg']
    path = write_bytes(tmp_path, "t.tsv", ("text\tlabel\n" + "\n".join(rows) + "\n").encode())
    examples = read_table(path)
    assert [e.text for e in examples] == ['"Quoted" start', "second", 'a "middle" one', 'trailing "']
    assert [e.line for e in examples] == [2, 3, 4, 5]  # 4 rows in, 4 out


def test_tsv_quotes_on_request(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "t.tsv", b'text\tlabel\n"tab\tinside ""q"""\tpos\n')
    (only,) = read_table(path, tsv_quotes=True)
    assert (only.text, only.label) == ('tab\tinside "q"', "pos")


def test_csv_valid_rfc4180_quoting_is_decoded(tmp_path: Path) -> None:
    text = 'text,label\n"He said ""hi"" there",pos\n"a, b",neg\nplain,"quoted label"\n'
    examples = read_table(write_bytes(tmp_path, "ok.csv", text.encode()), require_label=False)
    assert [(e.text, e.label) for e in examples[:2]] == [('He said "hi" there', "pos"), ("a, b", "neg")]
    assert examples[2].label == "quoted label"


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ('"He said "hi" there",pos', 'column 11: text after the closing quote of a quoted field; inside quotes write a '
                                     'quote as "" (RFC 4180)'),
        ('He said "hi",pos', 'column 9: a quote inside an unquoted field; quote the whole field and write the '
                             'quote as "" (RFC 4180)'),
        ('"unclosed,pos', "a quoted field opens here and is never closed (RFC 4180)"),
    ],
)
def test_csv_malformed_quoting_is_an_error_not_a_rewrite(tmp_path: Path, row: str, fragment: str) -> None:
    path = write_bytes(tmp_path, "bad.csv", f"text,label\nfine,neg\n{row}\nafter,pos\n".encode())
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert str(caught.value) == f"{path}:3: {fragment}"


def test_an_unclosed_quote_swallowing_the_next_row_is_traced_to_its_line(tmp_path: Path) -> None:
    """The quote opened on line 3 closes at line 4's opening quote: the error is found on line 4 and points back."""
    path = write_bytes(tmp_path, "bad.csv", 'text,label\nfine,neg\n"no closing quote,pos\n"next text",neg\n'.encode())
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert str(caught.value).startswith(f"{path}:4: column 2: text after the closing quote of a quoted field (the "
                                        f"field opened on line 3: is a closing quote missing there?)")


# ---------------------------------------------------------------------------------------------
# Degenerate label sets
# ---------------------------------------------------------------------------------------------


def test_one_class_training_data_is_refused_unless_allowed(tmp_path: Path) -> None:
    train = write_bytes(tmp_path, "train.csv", b"text,label\na,pos\nb,pos\nc,pos\n")
    data = classify.ClassifyData(train=str(train), dev=str(train), test=None)
    with pytest.raises(DataError, match=r"train\.csv: one class only: all 3 training examples are labelled 'pos'.*"
                                        r"set data\.allow_single_class=true"):
        classify.load_data(data)
    allowed = classify.load_data(classify.ClassifyData(train=str(train), dev=str(train), test=None,
                                                       allow_single_class=True))
    assert allowed.label_map.names == ("pos",) and len(allowed.train) == 3


def test_ner_training_data_without_entities_is_refused_unless_allowed(tmp_path: Path) -> None:
    train = write_bytes(tmp_path, "train.conll", b"a\tO\nb\tO\n\nc\tO\n")
    data = {"train": str(train), "dev": str(train), "test": str(train)}
    with pytest.raises(DataError, match=r"train\.conll: no entities: every tag of the 2 training sentences is O.*"
                                        r"data\.allow_no_entities=true"):
        ner.load_data(ner.NerData(**data))
    assert len(ner.load_data(ner.NerData(**data, allow_no_entities=True)).train) == 2


def test_a_tag_map_that_drops_every_entity_is_refused_too(tmp_path: Path) -> None:
    train = write_bytes(tmp_path, "train.conll", b"a\tB-OTH\nb\tO\n")
    data = ner.NerData(train=str(train), dev=str(train), test=str(train), tag_map={"OTH": "O"})
    with pytest.raises(DataError, match="no entities: .*after data.tag_map"):
        ner.load_data(data)
