"""Classification readers, label maps, stratified splits, encoding and sampler weights."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from torch.utils.data import WeightedRandomSampler
from transformers import BertTokenizerFast

from nlu.data.classification import (
    LabelMap,
    TextExample,
    check_labels,
    encode_classification,
    from_hf_dataset,
    read_table,
    sampler_weights,
    stratified_split,
)
from nlu.errors import ConfigError, DataError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "bad", "film", "not", "very", "is", "it", "##s"]


@pytest.fixture(scope="module")
def tokenizer(wordpiece_tokenizer) -> BertTokenizerFast:
    return wordpiece_tokenizer(VOCAB)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def example(text: str, label: str | None, line: int = 1, pair: str | None = None) -> TextExample:
    return TextExample(text, pair, label, "mem.csv", line)


# ---------------------------------------------------------------------------------------------
# read_table
# ---------------------------------------------------------------------------------------------


def test_read_csv_with_multiline_quoted_field(tmp_path: Path) -> None:
    text = 'text,label\r\n"a good\r\nfilm, really",pos\r\n\r\nbad film,neg\r\n"x ""q""", neg \r\n'
    path = write(tmp_path, "train.csv", text)
    examples = read_table(path)
    assert [(e.text, e.label, e.line) for e in examples] == [
        ("a good\r\nfilm, really", "pos", 2),
        ("bad film", "neg", 5),  # physical line: the quoted field spans lines 2-3, line 4 is blank
        ('x "q"', "neg", 6),
    ]
    assert {e.source for e in examples} == {str(path)} and examples[0].text_pair is None


def test_read_tsv_pairs_and_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path, "dev.tsv", "premise\thypothesis\tgold\nit is good\tit is\tentail\n")
    (pair,) = read_table(path, text_column="premise", text_pair_column="hypothesis", label_column="gold")
    assert (pair.text, pair.text_pair, pair.label) == ("it is good", "it is", "entail")
    lines = [json.dumps({"text": "good", "label": 1}), "", json.dumps({"text": "bad", "label": "0"})]
    first, second = read_table(write(tmp_path, "d.jsonl", "\n".join(lines) + "\n"))
    assert (first.label, first.line, second.label, second.line) == ("1", 1, "0", 3)


def test_read_unlabeled_data(tmp_path: Path) -> None:
    no_column = read_table(write(tmp_path, "test.csv", "text\ngood film\n"), require_label=False)
    assert [e.label for e in no_column] == [None]
    empty = read_table(write(tmp_path, "test2.csv", "text,label\ngood film,\nbad,neg\n"), require_label=False)
    assert [e.label for e in empty] == [None, "neg"]


@pytest.mark.parametrize(
    ("name", "text", "line", "fragment"),
    [
        ("a.csv", "sentence,label\ngood,pos\n", 1, "no column 'text' in the header; available: 'sentence', 'label'"),
        ("a.csv", "text,text,label\n", 1, "duplicate column(s) 'text'"),
        ("a.csv", "text\tlabel\ngood\tpos\n", 1, "available: 'text\\tlabel' (one column: the file looks tab-separated: "
                                                  "name it .tsv)"),
        ("a.csv", "\ntext,label\n", 1, "expected a header line"),
        ("a.csv", 'text,label\n"multi\nline",pos\n   ,neg\n', 4, "empty 'text'"),
        ("a.csv", "text,label\ngood,pos\nbad,\n", 3, "missing label 'label'"),
        ("a.csv", "text,label\ngood,pos,extra\n", 2, "3 fields, but the header has 2"),
        ("a.tsv", "text\tlabel\ngood\n", 2, "1 fields, but the header has 2"),
    ],
)
def test_delimited_table_errors_name_file_and_line(tmp_path: Path, name: str, text: str, line: int, fragment: str,
                                                   fails_at) -> None:
    fails_at(read_table, write(tmp_path, name, text), line, fragment)


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        ('{"text": "good", "label": "pos"}\n{"text": "bad"\n', 2, "invalid JSON"),
        ('{"label": "pos"}\n', 1, "missing key 'text'; found 'label'"),
        ('{"text": 3, "label": "pos"}\n', 1, "'text' must be a string, got int"),
        ('{"text": "ok", "label": null}\n', 1, "missing label"),
        ('{"text": "ok", "label": 0.5}\n', 1, "must be a string or integer, got float"),
    ],
)
def test_jsonl_table_errors_name_file_and_line(tmp_path: Path, lines: str, line: int, fragment: str, fails_at) -> None:
    fails_at(read_table, write(tmp_path, "a.jsonl", lines), line, fragment)


def test_read_table_pair_column_must_be_filled(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "a,b,label\nx,y,1\nx,,1\n")
    with pytest.raises(DataError, match=r"p\.csv:3: empty 'b'"):
        read_table(path, text_column="a", text_pair_column="b")


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("empty.csv", "", "expected a header line"),
        ("header.csv", "text,label\n", "no examples after the header"),
        ("empty.jsonl", "\n", "no examples"),
        ("data.txt", "good\tpos\n", "unsupported file type '.txt': use .csv, .tsv or .jsonl"),
    ],
)
def test_read_table_whole_file_errors(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DataError, match=str(path)) as caught:
        read_table(path)
    assert fragment in str(caught.value)


def test_read_table_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes(b'text,label\n"a\nb",pos\ncaf\xe9,pos\n')
    with pytest.raises(DataError, match=r"cp1252\.csv:4: not valid UTF-8 \(byte 0xe9\)"):
        read_table(path)


# ---------------------------------------------------------------------------------------------
# from_hf_dataset
# ---------------------------------------------------------------------------------------------


def test_from_hf_dataset_class_label_names() -> None:
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    ds = Dataset.from_dict({"sentence": ["bad", "good", "?"], "label": [0, 1, -1]}, features=features, split="test")
    examples = from_hf_dataset(ds, "sentence", "label", require_label=False)
    assert [(e.text, e.label, e.line) for e in examples] == [("bad", "neg", 0), ("good", "pos", 1), ("?", None, 2)]
    assert examples[0].source == "hf:dataset[test]"
    with pytest.raises(DataError, match=r"^hf:dataset\[test\]:2: missing label"):
        from_hf_dataset(ds, "sentence", "label")
    with pytest.raises(DataError, match="no column 'text'; the dataset has sentence, label"):
        from_hf_dataset(ds, "text", "label")


def test_from_hf_dataset_pairs_and_plain_labels() -> None:
    ds = Dataset.from_dict({"a": ["x"], "b": ["y"], "label": ["yes"]})
    (only,) = from_hf_dataset(ds, "a", "label", text_pair_column="b")
    assert (only.text, only.text_pair, only.label) == ("x", "y", "yes")


# ---------------------------------------------------------------------------------------------
# Labels and splits
# ---------------------------------------------------------------------------------------------


def test_label_map_sorting_and_ids() -> None:
    label_map = LabelMap.from_examples([example("a", "pos"), example("b", "neg"), example("c", None)])
    assert label_map.names == ("neg", "pos") and len(label_map) == 2
    assert (label_map.to_id("pos"), label_map.to_name(0)) == (1, "neg")
    assert "neg" in label_map and "x" not in label_map
    numeric = LabelMap.from_examples([example("a", str(n)) for n in (10, 2, 1, -1)])
    assert numeric.names == ("-1", "1", "2", "10")
    odd = LabelMap.from_examples([example("a", name) for name in ("²", "--5", "3", "b")])  # int() reads neither
    assert odd.names == ("3", "--5", "b", "²")


def test_label_map_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="no labeled examples"):
        LabelMap.from_examples([example("a", None)])
    with pytest.raises(ConfigError, match="duplicate label name"):
        LabelMap(("a", "a"))


def test_check_labels_names_unknown_label_and_location() -> None:
    label_map = LabelMap(("neg", "pos"))
    check_labels([example("a", "pos"), example("b", None)], label_map, "dev")
    dev = [TextExample("a", None, "pos", "dev.csv", 2), TextExample("b", None, "neutral", "dev.csv", 3)]
    expected = r"^dev\.csv:3: label 'neutral' in dev is not one of the known labels: neg, pos$"
    with pytest.raises(DataError, match=expected):
        check_labels(dev, label_map, "dev")


def test_stratified_split_keeps_proportions_and_is_deterministic() -> None:
    examples = [example(f"t{i}", "pos" if i % 4 else "neg", i) for i in range(200)]  # 150 pos, 50 neg
    parts, made = stratified_split(examples, {"dev": 0.2}, 13, "mem.csv")
    train, dev = parts["train"], parts["dev"]
    assert len(dev) == 40 and len(train) == 160
    assert Counter(e.label for e in dev) == {"pos": 30, "neg": 10}
    assert sorted(e.line for e in train + dev) == list(range(200))
    assert made["dev"].lines == [e.line for e in dev] and made["dev"].missing == {}
    assert stratified_split(examples, {"dev": 0.2}, 13, "mem.csv")[0] == parts
    assert stratified_split(examples, {"dev": 0.2}, 14, "mem.csv")[0] != parts


def test_stratified_dev_and_test_hold_every_class_that_can_be_shared() -> None:
    """Issue 22: classes of 2-4 examples got no dev example, and a class of 1 was a crash."""
    sizes = {"big": 100, "mid": 20, "four": 4, "three": 3, "two": 2, "one": 1}
    labels = [label for label, size in sizes.items() for _ in range(size)]
    examples = [example(f"t{line}", label, line) for line, label in enumerate(labels)]
    with pytest.warns(UserWarning) as caught:
        parts, made = stratified_split(examples, {"dev": 0.1, "test": 0.1}, 0, "mem.csv")
    counts = {name: Counter(e.label for e in part) for name, part in parts.items()}
    assert counts["dev"] == {"big": 10, "mid": 2, "four": 1, "three": 1, "two": 1}
    assert counts["test"] == {"big": 10, "mid": 2, "four": 1, "three": 1}
    assert counts["train"] == {"big": 80, "mid": 16, "four": 2, "three": 1, "two": 1, "one": 1}
    assert made["dev"].missing == {"one": 1} and made["test"].missing == {"two": 2, "one": 1}
    assert sorted(e.line for part in parts.values() for e in part) == list(range(130))  # each in exactly one
    messages = [str(w.message) for w in caught]
    assert any("no example of one (1 in the file)" in m for m in messages)
    assert any("no example of two (2 in the file), one (1 in the file)" in m for m in messages)


def test_stratified_split_errors() -> None:
    examples = [example("a", "pos", 2), example("b", "pos", 3), example("c", "neg", 4)]
    with pytest.raises(DataError, match=r"^mem\.csv:5: cannot stratify"):
        stratified_split(examples[:2] + [example("d", None, 5)], {"dev": 0.5}, 0, "mem.csv")
    with pytest.raises(ConfigError, match="dev_fraction must be between 0 and 1"):
        stratified_split(examples, {"dev": 1.0}, 0, "mem.csv")
    with pytest.raises(ConfigError, match="leaves nothing to train on"):
        stratified_split(examples, {"dev": 0.5, "test": 0.5}, 0, "mem.csv")
    with pytest.raises(DataError, match="^mem.csv: 1 examples are too few to split off"):
        stratified_split(examples[:1], {"dev": 0.5}, 0, "mem.csv")


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def test_encode_single_texts_and_truncation_count(tokenizer: BertTokenizerFast) -> None:
    label_map = LabelMap(("neg", "pos"))
    examples = [example("good film", "pos"), example("not a very good film", "neg"), example("it", None)]
    features, truncated = encode_classification(examples, tokenizer, label_map, max_length=5)
    assert truncated == 1
    assert tokenizer.convert_ids_to_tokens(features[0]["input_ids"]) == ["[CLS]", "good", "film", "[SEP]"]
    assert tokenizer.convert_ids_to_tokens(features[1]["input_ids"]) == ["[CLS]", "not", "a", "very", "[SEP]"]
    assert [f["label"] for f in features] == [1, 0, None]
    assert all(f["token_type_ids"] == [0] * len(f["input_ids"]) for f in features)
    assert set(features[0]) == {"input_ids", "token_type_ids", "label"}
    assert encode_classification(examples, tokenizer, label_map, max_length=16)[1] == 0


def test_encode_pairs_use_segment_ids(tokenizer: BertTokenizerFast) -> None:
    examples = [example("good film", "pos", pair="it is"), example("a very very very bad film", "neg", pair="bad")]
    features, truncated = encode_classification(examples, tokenizer, LabelMap(("neg", "pos")), max_length=8)
    assert tokenizer.convert_ids_to_tokens(features[0]["input_ids"]) == [
        "[CLS]", "good", "film", "[SEP]", "it", "is", "[SEP]"
    ]  # fmt: skip
    assert features[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert len(features[1]["input_ids"]) == 8 and features[1]["token_type_ids"][-2:] == [1, 1]  # longest first
    assert truncated == 1


def test_encode_asks_for_segment_ids_a_tokenizer_leaves_out(tokenizer: BertTokenizerFast) -> None:
    """XLM-R's tokenizer (multilingual-e5's) does not return token_type_ids unless asked; the encoder reads them."""
    plain = copy.deepcopy(tokenizer)
    plain.model_input_names = ["input_ids", "attention_mask"]
    examples = [example("good film", "pos", 1, pair="it is"), example("bad " * 10, "neg", 2, pair="really")]
    assert encode_classification(examples, plain, LabelMap(("neg", "pos")), 8) == encode_classification(
        examples, tokenizer, LabelMap(("neg", "pos")), 8)


def test_encode_rejects_unknown_labels_and_mixed_pairs(tokenizer: BertTokenizerFast) -> None:
    label_map = LabelMap(("neg", "pos"))
    with pytest.raises(DataError, match=r"^mem\.csv:7: label 'meh'"):
        encode_classification([example("good", "meh", 7)], tokenizer, label_map, 8)
    mixed = [example("good", "pos", 1, pair="it"), example("bad", "neg", 2)]
    with pytest.raises(DataError, match=r"^mem\.csv:2: some examples have a second text"):
        encode_classification(mixed, tokenizer, label_map, 8)
    assert encode_classification([], tokenizer, label_map, 8) == ([], 0)


# ---------------------------------------------------------------------------------------------
# Sampler weights
# ---------------------------------------------------------------------------------------------


def test_sampler_weights_values() -> None:
    assert sampler_weights([0, 0, 0, 1], num_classes=3) == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert sampler_weights([0, 0, 0, 0, 1], 2, power=0.5) == pytest.approx([0.5] * 4 + [1.0])
    with pytest.raises(ValueError, match=r"label ids \[3\] are outside 0\.\.2"):
        sampler_weights([0, 3], num_classes=3)


def class_frequencies(labels: list[int], power: float, draws: int) -> list[float]:
    weights = sampler_weights(labels, num_classes=3, power=power)
    sampler = WeightedRandomSampler(weights, draws, replacement=True, generator=torch.Generator().manual_seed(0))
    counts = Counter(labels[index] for index in sampler)
    return [counts[label] / draws for label in range(3)]


def test_weighted_sampling_balances_classes() -> None:
    labels = [0] * 900 + [1] * 90 + [2] * 10
    draws = 30_000
    # Each class frequency is a binomial proportion with p = 1/3: standard deviation
    # sqrt(p(1-p)/n) = 0.0027, so 0.015 is more than 5 sigma, while the imbalance being
    # corrected (0.90 / 0.09 / 0.01) is off by far more. The seed makes the draw reproducible.
    assert class_frequencies(labels, power=1.0, draws=draws) == pytest.approx([1 / 3] * 3, abs=0.015)
    # power=0 keeps the data's own proportions (sigma at most 0.0017 here).
    assert class_frequencies(labels, power=0.0, draws=draws) == pytest.approx([0.9, 0.09, 0.01], abs=0.01)


# ---------------------------------------------------------------------------------------------
# Splits made from one file (nlu.tasks.classify.load_data)
# ---------------------------------------------------------------------------------------------


def test_dev_and_test_fractions_from_one_file(tmp_path: Path) -> None:
    from nlu.tasks.classify import ClassifyData, load_data

    rows = [f"text {i},{'pos' if i % 3 else 'neg'}" for i in range(60)] + ["lonely,rare"]
    path = write(tmp_path, "all.csv", "text,label\n" + "\n".join(rows) + "\n")
    data = ClassifyData(train=str(path), dev=None, test=None, dev_fraction=0.1, test_fraction=0.2, split_seed=1)
    with pytest.warns(UserWarning, match="no example of rare"):
        splits = load_data(data)
    counts = [Counter(e.label for e in part) for part in (splits.train, splits.dev, splits.test)]
    assert counts == [{"pos": 28, "neg": 14, "rare": 1}, {"pos": 4, "neg": 2}, {"pos": 8, "neg": 4}]
    lines = sorted(e.line for part in (splits.train, splits.dev, splits.test) for e in part)
    assert lines == list(range(2, 63))  # every row in exactly one split
    assert splits.label_map.names == ("neg", "pos", "rare")
    summary = splits.summary()
    assert summary["test split"].startswith(f"12 of the 61 examples of {path}, drawn with data.split_seed=1")
    assert summary["dev split"].endswith("no example of rare (1 in the file)")
    assert json.loads(splits.save(tmp_path).read_text())["test"]["lines"] == [e.line for e in splits.test]
    with pytest.warns(UserWarning):
        assert [e.line for e in load_data(data).dev] == [e.line for e in splits.dev]
    with pytest.raises(ConfigError, match="data.test names a test file and data.test_fraction"):
        load_data(ClassifyData(train=str(path), test=str(path), test_fraction=0.2))
