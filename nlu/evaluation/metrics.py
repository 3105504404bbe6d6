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

One label set per evaluation: the classes present in the gold labels or the predictions of the
evaluated split, so macro averages do not depend on which classes training happened to see.
Training classes absent from both sides are listed under ``"not_in_split"``, not scored. A
class with no gold example (only predicted) has ``recall: None`` — it has no recall, and
printing 0 would read as "every example missed" — and its F1 counts as 0 in macro-F1 (its
predictions are all wrong). Macro recall averages the classes that have gold examples, so it
equals balanced accuracy; both equal scikit-learn's ``recall_score(average="macro",
zero_division=np.nan)`` and macro-F1 equals ``f1_score(average="macro", zero_division=0)``.

seqeval and scikit-learn are imported by the functions that score, not by this module: importing
them (scipy, pandas) takes 1.4 s, which every ``nlu`` command paid before it could check its first
option, and every torchrun worker again.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from typing import Literal

import numpy as np

from nlu.errors import ConfigError, DataError

EntityMode = Literal["strict", "default"]

# seqeval does not validate tags: "X-PER" crashes strict mode with a bare KeyError and "PER"
# silently becomes an entity of type "ER" in default mode, so we check the scheme ourselves.
# A type that starts or ends with "-" is read as two different types by the two modes.
_IOB2_TAG = re.compile(r"O|[BI]-(?:[^-]|[^-].*[^-])")


def check_tag_sequences(true_tags: list[list[str]], pred_tags: list[list[str]]) -> None:
    """Fail early, naming the sentence, so a misaligned decoder is not reported as a low score."""
    if len(true_tags) != len(pred_tags):
        raise DataError(f"{len(true_tags)} true sentences but {len(pred_tags)} predicted sentences")
    if not true_tags:
        raise DataError("no sentences to score")
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


def _row(precision: float, recall: float, f1: float, support: int) -> dict[str, float | int | None]:
    """One table row; recall is None for a class without gold examples (see the module docstring)."""
    return {"precision": float(precision), "recall": float(recall) if support else None, "f1": float(f1),
            "support": int(support)}


def _macro_recall(per_class: dict[str, dict]) -> float:
    """Mean recall over the classes with gold examples (= balanced accuracy); 0 when there are none."""
    recalls = [row["recall"] for row in per_class.values() if row["support"]]
    return float(np.mean(recalls)) if recalls else 0.0


def entity_scores(true_tags: list[list[str]], pred_tags: list[list[str]], mode: EntityMode = "strict") -> dict:
    """Entity-level precision/recall/F1 per type and micro/macro/weighted averages (seqeval).

    ``strict`` only counts spans that are well formed in IOB2 (an entity must open with B-),
    which is what the model is trained to emit; ``default`` is conlleval's lenient reading, in
    which a stray I- opens an entity. Reporting both shows how much of the score comes from
    the lenient decoding.
    """
    if mode not in ("strict", "default"):
        raise ConfigError(f"entity mode must be 'strict' or 'default', got {mode!r}")
    from seqeval.metrics import classification_report as seqeval_report  # see the module docstring
    from seqeval.scheme import IOB2

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
        averages[name]["recall"] = clean[1]  # an average is a number even when nothing is true
    per_class = {
        label: _row(entry["precision"], entry["recall"], entry["f1-score"], entry["support"])
        for label, entry in sorted(report.items())
    }
    # seqeval averages a type that is only ever predicted in as recall 0; see the module docstring.
    averages["macro"]["recall"] = _macro_recall(per_class)
    return {"per_class": per_class, "averages": averages}


def evaluated_labels(y_true: list[str], y_pred: list[str], labels: list[str]) -> list[str]:
    """The label set of one evaluation: classes in the gold labels or the predictions, in ``labels`` order."""
    present = set(y_true) | set(y_pred)
    return [label for label in labels if label in present]


def classification_scores(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """Accuracy, balanced accuracy, MCC and per-label/averaged precision/recall/F1 (scikit-learn).

    ``labels`` are the classes the model knows (its training classes): every value must be one
    of them, and they fix the row order. Rows and macro averages cover the classes present in
    this split's gold labels or predictions; the others are listed under ``not_in_split``.
    """
    from sklearn.metrics import (  # see the module docstring
        accuracy_score,
        balanced_accuracy_score,
        matthews_corrcoef,
        precision_recall_fscore_support,
    )

    check_labels(y_true, y_pred, labels)
    if not y_true:
        raise DataError("no examples to score")
    scored = evaluated_labels(y_true, y_pred, labels)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=scored, zero_division=0)
    per_class = {label: _row(p, r, f, s) for label, p, r, f, s in zip(scored, precision, recall, f1, support)}
    weighted = precision_recall_fscore_support(y_true, y_pred, labels=scored, average="weighted", zero_division=0)
    macro_recall = _macro_recall(per_class)
    averages = {
        "macro": _row(np.mean(precision), macro_recall, np.mean(f1), len(y_true)),
        "weighted": _row(*weighted[:3], len(y_true)),
    }
    with warnings.catch_warnings():
        # Predicted labels that never occur as true labels are expected (that is an error the
        # model makes); balanced accuracy then averages recall over the true labels only.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "per_class": per_class,
        "averages": averages,
        "not_in_split": [label for label in labels if label not in per_class],
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "macro_f1": averages["macro"]["f1"],
        "macro_recall": macro_recall,
        "weighted_f1": averages["weighted"]["f1"],
    }


def classification_summary(scores: dict, split: str) -> dict[str, float]:
    """:func:`classification_scores` as the flat figures a run's summary holds and a sweep tabulates:
    ``{split}_macro_f1``, balanced accuracy, accuracy, and recall and support per class."""
    return {f"{split}_macro_f1": scores["macro_f1"], f"{split}_balanced_accuracy": scores["balanced_accuracy"],
            f"{split}_accuracy": scores["accuracy"],
            **{f"{split}_recall[{label}]": row["recall"] for label, row in scores["per_class"].items()
               if row["recall"] is not None},
            **{f"{split}_support[{label}]": row["support"] for label, row in scores["per_class"].items()}}


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
    """Render any scorer's output as Markdown: one row per class, then the averages, then the scalars.

    A class without gold examples shows "—" as recall and says so; training classes absent from
    the split are named below the table rather than given a row of zeros."""
    lines = [
        f"| {label_header} | precision | recall | f1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = list(scores["per_class"].items()) + [(f"**{name} avg**", row) for name, row in scores["averages"].items()]
    for label, row in rows:
        values = " | ".join("—" if row[key] is None else f"{row[key]:.{digits}f}" for key in ("precision", "recall", "f1"))
        name = label if row["recall"] is not None else f"{label} (no gold examples, predicted only)"
        lines.append(f"| {name} | {values} | {row['support']} |")
    if scores.get("not_in_split"):
        lines += ["", f"Classes of the model absent from this split (neither gold nor predicted): "
                      f"{', '.join(scores['not_in_split'])}."]
    scalars = {name: value for name, value in scores.items() if isinstance(value, float)}
    if scalars:
        lines += ["", "| metric | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.{digits}f} |" for name, value in scalars.items()]
    return "\n".join(lines) + "\n"


def prediction_collapse(predicted: list[str], outside: str | None = None) -> str | None:
    """Say so when every prediction is one label (a tagger that predicts only ``outside``, i.e. O,
    or a classifier that predicts one class): the scores are then a baseline's, not a model's,
    and the usual cause is a learning rate too low for the data (nlu.recipes) or too few steps.
    None when the predictions vary."""
    counts = Counter(predicted)
    if len(counts) != 1:
        return None
    (label, count), = counts.items()
    if outside is None:
        return f"the classifier predicts only {label!r} (all {count:,} examples)"
    return f"the tagger predicts only {label} (all {count:,} words)" + (": no entity found" if label == outside else "")
