"""Entity, token and classification scores: hand-computed values, parity with seqeval/sklearn, bad input."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    recall_score,
)

from nlu.errors import ConfigError, DataError
from nlu.evaluation.metrics import (
    classification_scores,
    entity_scores,
    prediction_collapse,
    scores_markdown,
    token_scores,
)

TRUE = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["B-ORG", "I-ORG", "O", "B-PER"],
    ["O", "B-LOC", "I-LOC", "O"],
]
PRED = [
    ["B-PER", "I-PER", "O", "B-ORG"],  # PER right, LOC predicted as ORG
    ["B-ORG", "O", "O", "B-PER"],  # ORG cut short (wrong span), PER right
    ["O", "B-LOC", "I-LOC", "B-LOC"],  # LOC right, one spurious LOC
]


def close(row: dict, precision: Fraction, recall: Fraction, f1: Fraction, support: int) -> None:
    assert row["precision"] == pytest.approx(float(precision))
    assert row["recall"] == pytest.approx(float(recall))
    assert row["f1"] == pytest.approx(float(f1))
    assert row["support"] == support


@pytest.mark.parametrize("mode", ["strict", "default"])
def test_entity_scores_hand_computed(mode):
    # True entities: PER x2, LOC x2, ORG x1 (5). Predicted: PER x2, LOC x2, ORG x2 (6).
    # Correct (same span, same type): PER(s0), PER(s1), LOC(s2) = 3. All tags are well formed,
    # so strict and default agree.
    scores = entity_scores(TRUE, PRED, mode=mode)
    per = scores["per_class"]
    assert list(per) == ["LOC", "ORG", "PER"]
    close(per["PER"], Fraction(2, 2), Fraction(2, 2), Fraction(1), 2)
    close(per["LOC"], Fraction(1, 2), Fraction(1, 2), Fraction(1, 2), 2)  # 1 of 2 predicted, 1 of 2 true
    close(per["ORG"], Fraction(0), Fraction(0), Fraction(0), 1)  # 0 of 2 predicted, 0 of 1 true
    avg = scores["averages"]
    # micro: P = 3/6, R = 3/5, F1 = 2*(1/2)(3/5)/(1/2 + 3/5) = (3/5)/(11/10) = 6/11
    close(avg["micro"], Fraction(1, 2), Fraction(3, 5), Fraction(6, 11), 5)
    # macro: P = (1 + 1/2 + 0)/3 = 1/2, R = 1/2, F1 = (1 + 1/2 + 0)/3 = 1/2
    close(avg["macro"], Fraction(1, 2), Fraction(1, 2), Fraction(1, 2), 5)
    # weighted by support 2, 2, 1: P = (2*1 + 2*1/2 + 1*0)/5 = 3/5, likewise R and F1
    close(avg["weighted"], Fraction(3, 5), Fraction(3, 5), Fraction(3, 5), 5)


@pytest.mark.parametrize("mode", ["strict", "default"])
def test_entity_scores_match_seqeval(mode):
    options = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
    true = TRUE + [["I-PER", "I-PER", "O", "B-LOC"]]
    pred = PRED + [["I-PER", "O", "B-LOC", "I-LOC"]]
    reference = classification_report(true, pred, output_dict=True, zero_division=0, **options)
    scores = entity_scores(true, pred, mode=mode)
    rows = {**scores["per_class"], **{f"{k} avg": v for k, v in scores["averages"].items()}}
    assert set(rows) == set(reference)
    for name, row in rows.items():
        assert row["precision"] == pytest.approx(reference[name]["precision"])
        assert row["recall"] == pytest.approx(reference[name]["recall"])
        assert row["f1"] == pytest.approx(reference[name]["f1-score"])
        assert row["support"] == reference[name]["support"]
    json.dumps(scores)  # plain Python numbers only


def test_strict_and_default_differ_on_entity_opened_by_i_tag():
    true = [["B-PER", "I-PER", "O"]]
    pred = [["I-PER", "I-PER", "O"]]
    # default (conlleval) reads I-PER I-PER as the PER entity at 0-1: P = R = F1 = 1/1.
    close(entity_scores(true, pred, "default")["averages"]["micro"], Fraction(1), Fraction(1), Fraction(1), 1)
    # strict IOB2: an entity must start with B-, so nothing is predicted: P = 0 (0/0 -> 0), R = 0/1.
    close(entity_scores(true, pred, "strict")["averages"]["micro"], Fraction(0), Fraction(0), Fraction(0), 1)


def test_entity_scores_without_entities_are_zero_not_nan():
    scores = entity_scores([["O", "O"]], [["O", "O"]])
    assert scores["per_class"] == {}
    assert scores["averages"]["macro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_length_mismatch_names_the_sentence():
    pred = [row[:] for row in PRED]
    pred[2] = pred[2][:-1]
    with pytest.raises(DataError, match="sentence 2: 4 true tags but 3 predicted tags"):
        entity_scores(TRUE, pred)
    with pytest.raises(DataError, match="sentence 2"):
        token_scores(TRUE, pred)
    with pytest.raises(DataError, match="3 true sentences but 2 predicted"):
        entity_scores(TRUE, PRED[:2])
    with pytest.raises(DataError, match="no sentences to score"):
        entity_scores([], [])


def test_malformed_tags_and_mode_rejected():
    with pytest.raises(DataError, match=r"sentence 0, token 1: predicted tag 'PER' is not IOB2"):
        entity_scores([["O", "B-PER"]], [["O", "PER"]])
    with pytest.raises(DataError, match=r"sentence 0, token 0: true tag 'B-PER-' is not IOB2"):
        entity_scores([["B-PER-"]], [["O"]])
    with pytest.raises(ConfigError, match="strict"):
        entity_scores(TRUE, PRED, mode="lenient")


Y_TRUE = ["a", "a", "b", "b", "b", "c"]
Y_PRED = ["a", "b", "b", "b", "c", "c"]


def test_classification_scores_hand_computed():
    scores = classification_scores(Y_TRUE, Y_PRED, ["a", "b", "c", "d"])
    per = scores["per_class"]
    close(per["a"], Fraction(1, 1), Fraction(1, 2), Fraction(2, 3), 2)  # F1 = 2*1*(1/2)/(3/2)
    close(per["b"], Fraction(2, 3), Fraction(2, 3), Fraction(2, 3), 3)
    close(per["c"], Fraction(1, 2), Fraction(1, 1), Fraction(2, 3), 1)
    assert "d" not in per and scores["not_in_split"] == ["d"]  # a training class absent from the split
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["macro_f1"] == pytest.approx(2 / 3)  # over a, b, c: d is not scored as an F1 of 0
    assert scores["weighted_f1"] == pytest.approx(2 / 3)  # every present class has F1 2/3
    # balanced accuracy averages recall over the true classes: (1/2 + 2/3 + 1)/3 = 13/18
    assert scores["balanced_accuracy"] == pytest.approx(13 / 18)
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    assert scores["macro_recall"] == scores["averages"]["macro"]["recall"] == pytest.approx(13 / 18)
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(Y_TRUE, Y_PRED))
    json.dumps(scores)


def test_macro_figures_agree_with_each_other_and_with_sklearn():
    # The report: ten training classes, a split holding some of them, a model that also
    # predicts a class with no gold example. Old code: macro-F1 over all 10 training classes,
    # macro recall counting absent classes as 0, balanced accuracy over the true ones: 3 numbers.
    labels = [f"c{i}" for i in range(10)]
    y_true = ["c0"] * 6 + ["c1"] * 3 + ["c2"] * 2 + ["c3"]
    y_pred = ["c0"] * 4 + ["c1", "c4"] + ["c1", "c0", "c4"] + ["c2", "c0"] + ["c0"]
    scores = classification_scores(y_true, y_pred, labels)
    assert list(scores["per_class"]) == ["c0", "c1", "c2", "c3", "c4"]  # gold or predicted, in label order
    assert scores["not_in_split"] == ["c5", "c6", "c7", "c8", "c9"]
    # c4 is predicted twice but has no gold example: no recall (not 0), precision 0, F1 0.
    assert scores["per_class"]["c4"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert scores["per_class"]["c3"]["recall"] == 0.0  # one gold example, missed: a real 0
    # recalls c0 4/6, c1 1/3, c2 1/2, c3 0 -> 1.5/4 = 0.375
    assert scores["macro_recall"] == pytest.approx(0.375)
    assert scores["balanced_accuracy"] == pytest.approx(0.375)
    assert scores["macro_recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro", zero_division=np.nan))
    assert scores["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert scores["macro_f1"] == pytest.approx(np.mean([row["f1"] for row in scores["per_class"].values()]))
    text = scores_markdown(scores, label_header="class")
    assert "| c4 (no gold examples, predicted only) | 0.0000 | — | 0.0000 | 0 |" in text
    assert "absent from this split (neither gold nor predicted): c5, c6, c7, c8, c9." in text


def test_entity_type_only_predicted_has_no_recall_and_macro_recall_skips_it():
    true = [["B-PER", "O", "O"], ["B-LOC", "I-LOC", "O"]]
    pred = [["B-PER", "O", "B-ORG"], ["O", "O", "O"]]
    scores = entity_scores(true, pred)
    assert scores["per_class"]["ORG"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert scores["averages"]["macro"]["recall"] == pytest.approx(0.5)  # PER 1, LOC 0; ORG has no gold
    assert scores["averages"]["macro"]["f1"] == pytest.approx(1 / 3)  # PER 1, LOC 0, ORG 0


def test_prediction_collapse():
    assert prediction_collapse(["O", "O", "O"], outside="O") == "the tagger predicts only O (all 3 words): no entity found"
    assert prediction_collapse(["O", "B-PER", "O"], outside="O") is None
    assert prediction_collapse(["fresh"] * 4) == "the classifier predicts only 'fresh' (all 4 examples)"
    assert prediction_collapse(["fresh", "rotten"]) is None


def test_classification_scores_reject_bad_input():
    with pytest.raises(DataError, match="example 4: predicted label 'e'"):
        classification_scores(Y_TRUE, Y_PRED[:4] + ["e", "c"], ["a", "b", "c"])
    with pytest.raises(DataError, match="6 true labels but 5 predicted"):
        classification_scores(Y_TRUE, Y_PRED[:5], ["a", "b", "c"])
    with pytest.raises(DataError, match="no examples"):
        classification_scores([], [], ["a"])


def test_token_scores_match_sklearn_on_flattened_tags():
    scores = token_scores(TRUE, PRED)
    flat_true = [t for s in TRUE for t in s]
    flat_pred = [t for s in PRED for t in s]
    labels = sorted(set(flat_true) | set(flat_pred))
    assert list(scores["per_class"]) == labels
    precision, recall, f1, support = precision_recall_fscore_support(flat_true, flat_pred, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        row = scores["per_class"][label]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i])
        )
    # 12 tokens, wrong: B-LOC->B-ORG (s0), I-ORG->O (s1), O->B-LOC (s2) -> 9/12
    assert scores["accuracy"] == pytest.approx(9 / 12)


def test_markdown_table():
    text = scores_markdown(classification_scores(Y_TRUE, Y_PRED, ["a", "b", "c"]), label_header="class")
    lines = text.splitlines()
    assert lines[0] == "| class | precision | recall | f1 | support |"
    assert lines[2] == "| a | 1.0000 | 0.5000 | 0.6667 | 2 |"
    assert "| **macro avg** | 0.7222 | 0.7222 | 0.6667 | 6 |" in lines
    assert "| accuracy | 0.6667 |" in lines
    entity_text = scores_markdown(entity_scores(TRUE, PRED), label_header="entity")
    assert "| PER | 1.0000 | 1.0000 | 1.0000 | 2 |" in entity_text
    assert "| metric | value |" not in entity_text
