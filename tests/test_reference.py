"""The Trainer reference's shared parts: the recipe both sides run, and the figures both are scored by."""

from pathlib import Path

import pytest

from nlu.reference import classification_figures, ner_figures

ROOT = Path(__file__).resolve().parents[1]


def test_ner_figures_are_strict_entity_scores_counted_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-PER"], ["I-ORG", "O"]]  # PER right; LOC missed; ORG starts with I- (strict: wrong)
    figures = ner_figures(gold, predicted)
    # 3 gold entities, 3 predicted (PER, PER, and no strict ORG: I-ORG alone is not an entity in strict IOB2), 1 right
    assert figures["per_type_support"] == {"LOC": 1, "ORG": 1, "PER": 1}
    assert figures["precision"] == pytest.approx(1 / 2) and figures["recall"] == pytest.approx(1 / 3)
    assert figures["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert figures["per_type_f1"]["PER"] == pytest.approx(2 / 3) and figures["per_type_f1"]["LOC"] == 0


def test_classification_figures_carry_per_class_recall():
    figures = classification_figures(["a", "a", "b", "c"], ["a", "b", "b", "b"], ["a", "b", "c"])
    assert figures["recall"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert figures["accuracy"] == 0.5 and figures["balanced_accuracy"] == pytest.approx(0.5)
