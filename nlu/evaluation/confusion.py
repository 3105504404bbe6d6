"""Confusion matrices (label level and entity-span level) and their CSV/PNG reports.

A single report writer serves NER tags, NER entity types and classification labels: each is a
pair of aligned label lists plus the label order. Entity spans are turned into such a pair by
:func:`entity_confusion`, whose ``(none)`` label stands for "no span on this side".
"""

from __future__ import annotations

import csv
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nlu.evaluation.metrics import EntityMode, check_labels, check_tag_sequences, evaluated_labels
from nlu.evaluation.plots import plot_heatmap
from nlu.files import atomic_path

NONE = "(none)"

NORMALIZATIONS = {
    "raw": "counts",
    "true": "row-normalised (diagonal = recall)",
    "pred": "column-normalised (diagonal = precision)",
    "all": "normalised over all",
}


def confusion_matrices(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict[str, np.ndarray]:
    """Raw counts and the three normalisations, rows = true label, columns = predicted label.

    Computed by scikit-learn so the numbers match what anyone re-checking with it gets; a row
    or column with no examples is 0 here (scikit-learn's choice), and blank in the CSV files.
    """
    from sklearn.metrics import confusion_matrix  # imported on use: see nlu.evaluation.metrics

    check_labels(y_true, y_pred, labels)
    if not y_true:  # scikit-learn refuses empty input; an empty matrix is the honest answer
        zeros = np.zeros((len(labels), len(labels)))
        return {kind: zeros.astype(int) if kind == "raw" else zeros.copy() for kind in NORMALIZATIONS}
    with warnings.catch_warnings():  # its shape comes from ``labels``: the warning for one label seen is moot
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return {
            kind: confusion_matrix(y_true, y_pred, labels=labels, normalize=None if kind == "raw" else kind)
            for kind in NORMALIZATIONS
        }


class Span(NamedTuple):
    type: str
    start: int
    end: int  # exclusive


def entity_spans(tags: list[str], mode: EntityMode = "strict") -> list[Span]:
    """The entities of one sentence, read the same way as :func:`~nlu.evaluation.metrics.entity_scores`."""
    from seqeval.metrics.sequence_labeling import get_entities  # imported on use: see nlu.evaluation.metrics
    from seqeval.scheme import IOB2, Entities

    if mode == "strict":
        return [Span(e.tag, e.start, e.end) for e in Entities([tags], IOB2).entities[0]]
    return [Span(kind, start, end + 1) for kind, start, end in get_entities(tags)]


def entity_counts(tag_sequences: list[list[str]], mode: EntityMode = "strict") -> Counter:
    """Entities per type over sentences: what an NER split holds, for its composition line."""
    return Counter(span.type for tags in tag_sequences for span in entity_spans(tags, mode))


def _overlap(a: Span, b: Span) -> int:
    return min(a.end, b.end) - max(a.start, b.start)


def _pair_spans(true: list[Span], pred: list[Span]) -> list[tuple[Span | None, Span | None]]:
    """One-to-one pairing of a sentence's true and predicted spans; see :func:`entity_confusion`."""
    by_bounds = {(span.start, span.end): span for span in pred}  # spans of one side never overlap
    pairs: list[tuple[Span | None, Span | None]] = []
    unpaired_true = []
    for span in true:
        same_bounds = by_bounds.pop((span.start, span.end), None)
        if same_bounds is None:
            unpaired_true.append(span)
        else:
            pairs.append((span, same_bounds))
    remaining = list(by_bounds.values())
    for span in unpaired_true:
        overlapping = [p for p in remaining if _overlap(span, p) > 0]
        if not overlapping:
            pairs.append((span, None))
            continue
        best = max(overlapping, key=lambda p: (p.type == span.type, _overlap(span, p), -p.start))
        remaining.remove(best)
        pairs.append((span, best))
    pairs.extend((None, p) for p in remaining)
    return pairs


def _outcome(true: Span | None, pred: Span | None) -> str:
    if pred is None:
        return "missed"
    if true is None:
        return "spurious"
    same_type = true.type == pred.type
    if (true.start, true.end) == (pred.start, pred.end):
        return "exact" if same_type else "type_confusion"
    return "boundary" if same_type else "type_and_boundary"


OUTCOMES = ("exact", "type_confusion", "boundary", "type_and_boundary", "missed", "spurious")


@dataclass(frozen=True)
class EntityConfusion:
    """Entity-level confusion: where each true span went, where each predicted span came from.

    ``true_types``/``pred_types`` hold one entry per paired outcome (``(none)`` for the
    missing side), so they feed :func:`save_confusion_reports` like any other label lists.
    Their confusion matrix over ``labels`` (types, sorted, then ``(none)``) has the true spans
    per type as row sums, the predicted spans per type as column sums, missed entities in the
    ``(type, (none))`` cells and spurious ones in ``((none), type)``. ``counts`` splits the same
    pairs by outcome, because the matrix alone cannot tell an exact match from a boundary error
    of the same type.
    """

    labels: list[str]
    true_types: list[str]
    pred_types: list[str]
    counts: dict[str, int]


def entity_confusion(
    true_tags: list[list[str]], pred_tags: list[list[str]], mode: EntityMode = "strict"
) -> EntityConfusion:
    """Pair true and predicted entity spans per sentence and classify every pair.

    Pairing is one-to-one (each true and each predicted span is used at most once), per sentence:

    1. a predicted span with exactly the same boundaries as a true span is paired with it:
       ``exact`` if the types agree, else ``type_confusion``;
    2. each still-unpaired true span, in sentence order, takes the best still-unpaired
       predicted span that overlaps it by at least one token - preferring the same type, then
       the largest overlap, then the earliest start: ``boundary`` if the types agree, else
       ``type_and_boundary``;
    3. true spans left over are ``missed``, predicted spans left over are ``spurious``.

    So when a prediction splits one true entity in two, one piece is a boundary error and the
    other is spurious; when it merges two true entities, one is a boundary error and the other
    is missed. Spans are read as in ``entity_scores`` with the same ``mode``.
    """
    check_tag_sequences(true_tags, pred_tags)
    pairs = [
        pair
        for true, pred in zip(true_tags, pred_tags)
        for pair in _pair_spans(entity_spans(true, mode), entity_spans(pred, mode))
    ]
    true_types = [NONE if true is None else true.type for true, _ in pairs]
    pred_types = [NONE if pred is None else pred.type for _, pred in pairs]
    labels = sorted((set(true_types) | set(pred_types)) - {NONE}) + [NONE]
    outcomes = Counter(_outcome(true, pred) for true, pred in pairs)
    return EntityConfusion(
        labels=labels,
        true_types=true_types,
        pred_types=pred_types,
        counts={name: outcomes[name] for name in OUTCOMES},
    )


def write_confusion_csv(matrix: np.ndarray, labels: list[str], path: str | os.PathLike,
                        undefined: np.ndarray | None = None) -> Path:
    """Labelled CSV (first column = true label, header = predicted labels) that opens in any spreadsheet.

    Counts are written as integers, normalised values with six decimals; ``undefined`` cells
    (0/0: a recall row without true examples, a precision column without predictions) are blank.
    """
    matrix = np.asarray(matrix)
    integral = np.issubdtype(matrix.dtype, np.integer)
    blank = np.zeros(matrix.shape, dtype=bool) if undefined is None else undefined
    with atomic_path(path) as temp, open(temp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["true \\ predicted", *labels])
        for label, row, empty in zip(labels, matrix, blank):
            writer.writerow([label, *("" if e else str(int(v)) if integral else f"{v:.6f}" for v, e in zip(row, empty))])
    return Path(path)


def save_confusion_reports(
    y_true: list[str], y_pred: list[str], labels: list[str], out_dir: str | os.PathLike, prefix: str, split: str
) -> list[Path]:
    """Write ``{prefix}_confusion_{raw,true,pred,all}.{csv,png}`` into ``out_dir``; return the paths.

    ``labels`` are the classes the model knows; the matrices cover those present in this
    split's gold labels or predictions (the label set of the scores, see nlu.evaluation.metrics).
    ``split`` (e.g. "test (data/test.csv)") opens every title; each PNG row label carries its
    true count, so a normalised row resting on one example is visibly small.
    """
    check_labels(y_true, y_pred, labels)
    labels = evaluated_labels(y_true, y_pred, labels)
    out = Path(out_dir)
    paths = []
    matrices = confusion_matrices(y_true, y_pred, labels)
    raw = matrices["raw"]
    support = raw.sum(axis=1)
    undefined = {"true": np.broadcast_to(support[:, None] == 0, raw.shape),
                 "pred": np.broadcast_to(raw.sum(axis=0)[None, :] == 0, raw.shape)}
    for kind, matrix in matrices.items():
        stem = f"{prefix}_confusion_{kind}"
        paths.append(write_confusion_csv(matrix, labels, out / f"{stem}.csv", undefined.get(kind)))
        title = f"{split} · {prefix}: {NORMALIZATIONS[kind]}"
        paths.append(plot_heatmap(matrix, labels, out / f"{stem}.png", title, normalized=kind != "raw", support=support))
    return paths
