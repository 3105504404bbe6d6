"""Subsets for studies on a budget: seeded, in file order, stratified by label, tags the train draw lacks left out and counted."""

from collections import Counter

import pytest

from nlu.data.classification import TextExample, read_table
from nlu.data.ner import NerSentence, check_label_sets, read_ner_file
from nlu.data.subsets import draw_subsets, write_records
from nlu.errors import DataError


def examples(labels: str) -> list[TextExample]:
    return [TextExample(f"text {index}", None, label, "t.csv", index + 2) for index, label in enumerate(labels)]


def sentence(line: int, *tags: str) -> NerSentence:
    return NerSentence([f"w{line}_{index}" for index in range(len(tags))], list(tags), "n.conll", line)


def test_examples_are_drawn_stratified_seeded_and_in_file_order():
    train = examples("a" * 80 + "b" * 20)
    drawn, unseen = draw_subsets({"train": train, "dev": examples("ab"), "test": []}, {"train": 10}, seed=3)
    assert Counter(example.label for example in drawn["train"]) == {"a": 8, "b": 2}
    assert [example.line for example in drawn["train"]] == sorted(example.line for example in drawn["train"])
    assert drawn == draw_subsets({"train": train, "dev": examples("ab"), "test": []}, {"train": 10}, seed=3)[0]
    assert drawn["train"] != draw_subsets({"train": train, "dev": [], "test": []}, {"train": 10}, seed=4)[0]["train"]
    assert len(drawn["dev"]) == 2 and unseen == {}


def test_dev_and_test_sentences_with_a_type_the_train_draw_lacks_are_left_out_and_counted():
    train = [sentence(1, "B-PER", "O"), sentence(4, "O", "O")]
    dev = [sentence(10, "B-PER"), sentence(12, "B-LOC", "I-LOC"), sentence(15, "O")]
    test = [sentence(20, "B-ORG"), sentence(22, "O", "B-PER"), sentence(25, "B-PER", "I-PER")]
    drawn, unseen = draw_subsets({"train": train, "dev": dev, "test": test}, {"train": 2}, seed=0)
    # I-PER is kept: the train draw has PER, and nlu trains B- and I- for every type it sees (label_list)
    assert [s.line for s in drawn["dev"]] == [10, 15] and [s.line for s in drawn["test"]] == [22, 25]
    assert unseen == {"dev": 1, "test": 1}
    check_label_sets(drawn["train"], drawn["dev"] + drawn["test"], "dev and test")  # what a run checks: no error
    with pytest.raises(DataError, match=r"n.conll: a subset of 5 train records was asked for, but the split has 2"):
        draw_subsets({"train": train, "dev": dev, "test": test}, {"train": 5}, seed=0)
    with pytest.raises(DataError, match=r"n.conll: a subset of 3 test records .* has 2 \(1 left out for entity types"):
        draw_subsets({"train": train, "dev": dev, "test": test}, {"train": 2, "test": 3}, seed=0)


def test_written_subsets_read_back_as_they_were(tmp_path):
    drawn = [sentence(1, "B-PER", "O"), sentence(4, "O", "B-LOC")]
    back = read_ner_file(write_records(tmp_path / "train", drawn))
    assert [(s.words, s.tags) for s in back] == [(s.words, s.tags) for s in drawn]
    pairs = [TextExample("a, \"quoted\"", "second", "x", "t.csv", 2), TextExample("b", "c\nd", "y", "t.csv", 3)]
    assert [(e.text, e.text_pair, e.label) for e in read_table(write_records(tmp_path / "pairs", pairs),
                                                                          text_pair_column="text_pair")] == [
        (e.text, e.text_pair, e.label) for e in pairs]
