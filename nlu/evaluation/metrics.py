"""Scores for NER (entity and token level) and sequence classification.

Every scorer returns the same plain-Python shape so that one Markdown renderer, one JSON dump
and one "pick the best checkpoint" lookup serve all tasks::

    {"per_class": {label: {"precision", "recall", "f1", "support"}},
     "averages":  {"micro" | "macro" | "weighted": {"precision", "recall", "f1", "support"}},
     <scalar name>: float, ...}

Classification and token scores carry the scalars ``accuracy``, ``balanced_accuracy``,
``mcc``, ``macro_f1`` and ``weighted_f1``; entity scores have none (seqeval defines no
accuracy over spans). Values are Python ``float``/``int``, never numpy scalars, so they
serialise to JSON as they are.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Literal

from seqeval.metrics import classification_report as seqeval_report
from seqeval.scheme import IOB2
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

from nlu.errors import ConfigError, DataError

EntityMode = Literal["strict", "default"]

# seqeval does not validate tags: "X-PER" crashes strict mode with a bare KeyError and "PER"
# silently becomes an entity of type "ER" in default mode, so we check the scheme ourselves.
_IOB2_TAG = re.compile(r"O|[BI]-.+")


def check_tag_sequences(true_tags: list[list[str]], pred_tags: list[list[str]]) -> None:
    """Fail early, naming the sentence, so a misaligned decoder is not reported as a low score."""
    if len(true_tags) != len(pred_tags):
        raise DataError(f"{len(true_tags)} true sentences but {len(pred_tags)} predicted sentences")
    for index, (true, pred) in enumerate(zip(true_tags, pred_tags)):
        if len(true) != len(pred):
            raise DataError(f"sentence {index}: {len(true)} true tags but {len(pred)} predicted tags")
        for side, tags in (("true", true), ("predicted", pred)):
            for position, tag in enumerate(tags):
                if not isinstance(tag, str) or not _IOB2_TAG.fullmatch(tag):
                    raise DataError(f"sentence {index}, token {position}: {side} tag {tag!r} is not IOB2 (O, B-TYPE, I-TYPE)")


def check_labels(y_true: list[str], y_pred: list[str], labels: list[str]) -> None:
    """Every value must be one of ``labels``: scikit-learn silently drops the others, inflating scores."""
    if len(y_true) != len(y_pred):
        raise DataError(f"{len(y_true)} true labels but {len(y_pred)} predicted labels")
    known = set(labels)
    for index, (true, pred) in enumerate(zip(y_true, y_pred)):
        for side, value in (("true", true), ("predicted", pred)):
            if value not in known:
                raise DataError(f"example {index}: {side} label {value!r} is not one of {list(labels)}")


def _row(precision: float, recall: float, f1: float, support: int) -> dict[str, float | int]:
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)}


def entity_scores(true_tags: list[list[str]], pred_tags: list[list[str]], mode: EntityMode = "strict") -> dict:
    """Entity-level precision/recall/F1 per type and micro/macro/weighted averages (seqeval).

    ``strict`` only counts spans that are well formed in IOB2 (an entity must open with B-),
    which is what the model is trained to emit; ``default`` is conlleval's lenient reading, in
    which a stray I- opens an entity. Reporting both shows how much of the score comes from
    the lenient decoding.
    """
    if mode not in ("strict", "default"):
        raise ConfigError(f"entity mode must be 'strict' or 'default', got {mode!r}")
    check_tag_sequences(true_tags, pred_tags)
    options = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
    with warnings.catch_warnings():
        # With no entity types at all seqeval averages an empty array: a NumPy warning and a
        # NaN macro average, replaced by 0 below to match zero_division=0 and stay valid JSON.
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        report = seqeval_report(true_tags, pred_tags, output_dict=True, zero_division=0, **options)
    averages = {}
    for name in ("micro", "macro", "weighted"):
        entry = report.pop(f"{name} avg")
        clean = [0.0 if math.isnan(value) else value for value in (entry["precision"], entry["recall"], entry["f1-score"])]
        averages[name] = _row(*clean, entry["support"])
    per_class = {
        label: _row(entry["precision"], entry["recall"], entry["f1-score"], entry["support"])
        for label, entry in sorted(report.items())
    }
    return {"per_class": per_class, "averages": averages}


def classification_scores(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """Accuracy, balanced accuracy, MCC and per-label/averaged precision/recall/F1 (scikit-learn).

    ``labels`` fixes the row order and keeps labels absent from this split in the table (with
    zeros) so reports from different splits line up.
    """
    check_labels(y_true, y_pred, labels)
    if not y_true:
        raise DataError("no examples to score")
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {label: _row(p, r, f, s) for label, p, r, f, s in zip(labels, precision, recall, f1, support)}
    averages = {}
    for name in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=name, zero_division=0)
        averages[name] = _row(p, r, f, len(y_true))
    with warnings.catch_warnings():
        # Predicted labels that never occur as true labels are expected (that is an error the
        # model makes); balanced accuracy then averages recall over the true labels only.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "per_class": per_class,
        "averages": averages,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "macro_f1": averages["macro"]["f1"],
        "weighted_f1": averages["weighted"]["f1"],
    }


def token_scores(true_tags: list[list[str]], pred_tags: list[list[str]]) -> dict:
    """Per-tag scores over all tokens: shows which tags (often I- of rare types) the model misses.

    The same scorer as classification, over the flattened tags; the label set is every tag
    seen on either side, so tags only ever predicted still get a row.
    """
    check_tag_sequences(true_tags, pred_tags)
    flat_true = [tag for sentence in true_tags for tag in sentence]
    flat_pred = [tag for sentence in pred_tags for tag in sentence]
    return classification_scores(flat_true, flat_pred, sorted(set(flat_true) | set(flat_pred)))


def scores_markdown(scores: dict, label_header: str = "label", digits: int = 4) -> str:
    """Render any scorer's output as Markdown: one row per class, then the averages, then the scalars."""
    lines = [
        f"| {label_header} | precision | recall | f1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = list(scores["per_class"].items()) + [(f"**{name} avg**", row) for name, row in scores["averages"].items()]
    for label, row in rows:
        values = " | ".join(f"{row[key]:.{digits}f}" for key in ("precision", "recall", "f1"))
        lines.append(f"| {label} | {values} | {row['support']} |")
    scalars = {name: value for name, value in scores.items() if isinstance(value, float)}
    if scalars:
        lines += ["", "| metric | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.{digits}f} |" for name, value in scalars.items()]
    return "\n".join(lines) + "\n"
