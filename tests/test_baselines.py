"""Baselines a model must beat, scored against hand-computed figures under a run's figure names."""

import pytest

from nlu.data.classification import TextExample
from nlu.data.ner import NerSentence
from nlu.evaluation.baselines import baseline_figures, most_frequent_tag


def sentence(pairs: str) -> NerSentence:
    words, tags = zip(*(item.split("/") for item in pairs.split()))
    return NerSentence(list(words), list(tags), "toy.conll", 1)


def example(text: str, label: str) -> TextExample:
    return TextExample(text, None, label, "toy.csv", 2)


TRAIN_SENTENCES = [sentence("Obama/B-PER visited/O New/B-LOC York/I-LOC"), sentence("Obama/B-PER spoke/O"),
                   sentence("York/B-LOC and/O Obama/B-PER")]


def test_most_frequent_tag_memorises_types_and_opens_each_run_with_b():
    test = [sentence("Obama/B-PER met/O New/B-LOC York/I-LOC"), sentence("Paris/B-LOC is/O nice/O")]
    assert most_frequent_tag(TRAIN_SENTENCES, test) == [["B-PER", "O", "B-LOC", "I-LOC"], ["O", "O", "O"]]
    figures = baseline_figures("ner", TRAIN_SENTENCES, test, [])["most frequent tag per word"]
    # 2 of 3 gold entities found, no false positive: precision 1, recall 2/3, F1 0.8
    assert figures["test_f1"] == pytest.approx(0.8)
    assert figures["test_f1[PER]"] == pytest.approx(1.0) and figures["test_f1[LOC]"] == pytest.approx(2 / 3)


def test_classification_baselines_use_a_run_s_figure_names_and_values():
    train = [example(text, label) for text, label in (
        ("good great film", "pos"), ("great good fun", "pos"), ("good great cast", "pos"),
        ("bad awful plot", "neg"), ("awful bad acting", "neg"))]
    test = [example("great and good", "pos"), example("awful and bad", "neg"), example("bad awful mess", "neg")]
    figures = baseline_figures("classify", train, test, ["neg", "pos"])
    majority = figures["majority class"]  # always "pos": pos F1 2·(1/3·1)/(1/3+1) = 0.5, neg F1 0 → macro 0.25
    assert majority["test_macro_f1"] == pytest.approx(0.25) and majority["test_accuracy"] == pytest.approx(1 / 3)
    assert majority["test_recall[pos]"] == 1.0 and majority["test_recall[neg]"] == 0.0
    linear = figures["TF-IDF 1–2-grams + logistic regression"]
    assert linear["test_macro_f1"] == pytest.approx(1.0) and linear["test_balanced_accuracy"] == pytest.approx(1.0)
    assert set(figures) == {"majority class", "TF-IDF 1–2-grams + logistic regression",
                            "TF-IDF 1–2-grams + logistic regression, balanced class weights"}
