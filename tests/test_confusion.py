"""Confusion matrices against scikit-learn and hand counts; entity-span confusion; CSV/PNG reports."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from nlu.errors import DataError
from nlu.evaluation.confusion import (
    NONE,
    confusion_matrices,
    entity_confusion,
    entity_counts,
    save_confusion_reports,
    write_confusion_csv,
)

Y_TRUE = ["a", "a", "b", "b", "b", "c"]
Y_PRED = ["a", "b", "b", "b", "c", "c"]
LABELS = ["a", "b", "c", "d"]  # "d" never occurs: its row and column must be 0, not NaN


def test_confusion_matrices_hand_computed_and_equal_to_sklearn():
    matrices = confusion_matrices(Y_TRUE, Y_PRED, LABELS)
    assert list(matrices) == ["raw", "true", "pred", "all"]
    raw = np.array([[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrices["raw"], raw)
    assert np.issubdtype(matrices["raw"].dtype, np.integer)
    # rows divided by true counts 2, 3, 1 (diagonal = recall)
    true = [[1 / 2, 1 / 2, 0, 0], [0, 2 / 3, 1 / 3, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    # columns divided by predicted counts 1, 3, 2 (diagonal = precision)
    pred = [[1, 1 / 3, 0, 0], [0, 2 / 3, 1 / 2, 0], [0, 0, 1 / 2, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(matrices["true"], true)
    np.testing.assert_allclose(matrices["pred"], pred)
    np.testing.assert_allclose(matrices["all"], raw / 6)
    for kind in ("true", "pred", "all"):
        assert not np.isnan(matrices[kind]).any()
        np.testing.assert_array_equal(matrices[kind], confusion_matrix(Y_TRUE, Y_PRED, labels=LABELS, normalize=kind))
    np.testing.assert_allclose(matrices["true"].sum(axis=1), [1, 1, 1, 0])
    np.testing.assert_allclose(matrices["pred"].sum(axis=0), [1, 1, 1, 0])
    assert matrices["all"].sum() == pytest.approx(1.0)


def test_confusion_matrices_reject_unknown_labels_and_accept_empty_input():
    with pytest.raises(DataError, match="example 0: true label 'z'"):
        confusion_matrices(["z"], ["a"], LABELS)
    with pytest.raises(DataError, match="2 true labels but 1 predicted"):
        confusion_matrices(["a", "a"], ["a"], LABELS)
    empty = confusion_matrices([], [], ["a", "b"])
    assert all(matrix.shape == (2, 2) and not matrix.any() for matrix in empty.values())


def test_one_label_seen_gives_the_full_matrix_without_a_library_warning(recwarn):
    """scikit-learn warns that one label seen gives a 1 x 1 matrix, even when that is the whole label
    set (NER data of one entity type); its warning text reached a user's console once per matrix."""
    matrices = confusion_matrices(["b", "b"], ["b", "b"], ["b"])
    np.testing.assert_array_equal(matrices["raw"], [[2]])
    assert not [warning for warning in recwarn if "single label" in str(warning.message)]


# One sentence per outcome pattern; spans are (type, start, end-exclusive).
ENTITY_TRUE = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],  # PER 0-2, LOC 3-4
    ["B-ORG", "I-ORG", "I-ORG", "O", "O"],  # ORG 0-3
    ["B-LOC", "I-LOC", "O", "B-PER", "O"],  # LOC 0-2, PER 3-4
    ["B-PER", "I-PER", "I-PER", "I-PER", "O"],  # PER 0-4
]
ENTITY_PRED = [
    ["B-PER", "I-PER", "O", "B-ORG", "O"],  # PER 0-2 exact; ORG 3-4 same span, other type
    ["B-ORG", "I-ORG", "O", "O", "B-MISC"],  # ORG 0-2 boundary error; MISC 4-5 overlaps nothing
    ["B-PER", "O", "O", "O", "O"],  # PER 0-1 overlaps LOC 0-2: type and boundary; PER 3-4 missed
    ["B-PER", "I-PER", "B-PER", "I-PER", "O"],  # split: PER 0-2 boundary (earlier start wins the tie), PER 2-4 spurious
]


def test_entity_confusion_every_category():
    result = entity_confusion(ENTITY_TRUE, ENTITY_PRED)
    assert result.counts == {
        "exact": 1,  # s0 PER
        "type_confusion": 1,  # s0 LOC -> ORG
        "boundary": 2,  # s1 ORG, s3 PER
        "type_and_boundary": 1,  # s2 LOC -> PER
        "missed": 1,  # s2 PER
        "spurious": 2,  # s1 MISC, s3 second PER piece
    }
    assert result.labels == ["LOC", "MISC", "ORG", "PER", NONE]
    expected = np.array(
        [
            # LOC MISC ORG PER (none)    <- predicted
            [0, 0, 1, 1, 0],  # LOC: s0 -> ORG, s2 -> PER
            [0, 0, 0, 0, 0],  # MISC: never true
            [0, 0, 1, 0, 0],  # ORG: s1 boundary error, same type
            [0, 0, 0, 2, 1],  # PER: s0 exact + s3 boundary; s2 missed
            [0, 1, 0, 1, 0],  # (none): spurious MISC (s1) and PER (s3)
        ]
    )
    matrix = confusion_matrices(result.true_types, result.pred_types, result.labels)["raw"]
    np.testing.assert_array_equal(matrix, expected)
    # Every true span and every predicted span is accounted for exactly once.
    assert matrix[:-1].sum(axis=1).tolist() == [2, 0, 1, 3]  # true LOC, MISC, ORG, PER
    assert matrix[:, :-1].sum(axis=0).tolist() == [0, 1, 2, 4]  # predicted LOC, MISC, ORG, PER


def test_entity_confusion_merge_and_modes():
    # Prediction merges two adjacent true PER spans: the first is a boundary error, the second missed.
    merged = entity_confusion([["B-PER", "B-PER"]], [["B-PER", "I-PER"]])
    assert merged.counts["boundary"] == 1 and merged.counts["missed"] == 1
    # A prediction opened by I- is no entity in strict mode but an exact match in default mode.
    true, pred = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    assert entity_confusion(true, pred, "strict").counts["missed"] == 1
    assert entity_confusion(true, pred, "default").counts["exact"] == 1
    none = entity_confusion([["O"]], [["O"]])
    assert none.labels == [NONE] and none.true_types == [] and none.pred_types == []
    with pytest.raises(DataError, match="sentence 1"):
        entity_confusion(ENTITY_TRUE, [ENTITY_PRED[0], ENTITY_PRED[1][:3], *ENTITY_PRED[2:]])


def test_write_confusion_csv_exact_content(tmp_path):
    matrices = confusion_matrices(Y_TRUE, Y_PRED, ["a", "b", "c"])
    raw_path = write_confusion_csv(matrices["raw"], ["a", "b", "c"], tmp_path / "raw.csv")
    assert raw_path.read_bytes().decode("utf-8") == (  # bytes: read_text would hide "\r\n"
        "true \\ predicted,a,b,c\n"
        "a,1,1,0\n"
        "b,0,2,1\n"
        "c,0,0,1\n"
    )
    write_confusion_csv(matrices["true"], ["a", "b", "c"], tmp_path / "true.csv")
    assert (tmp_path / "true.csv").read_bytes().decode("utf-8") == (
        "true \\ predicted,a,b,c\n"
        "a,0.500000,0.500000,0.000000\n"
        "b,0.000000,0.666667,0.333333\n"
        "c,0.000000,0.000000,1.000000\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.csv", "true.csv"]  # no temp files left


def test_a_ratio_of_nothing_is_left_blank_not_written_as_zero(tmp_path):
    """'x' is never true (its recall row is 0/0) and 'y' never predicted (its precision column is 0/0)."""
    save_confusion_reports(["a", "y", "a"], ["a", "a", "x"], ["a", "x", "y"], tmp_path, "intent", "test")
    rows = {kind: (tmp_path / f"intent_confusion_{kind}.csv").read_text().splitlines()[1:] for kind in ("true", "pred")}
    assert rows["true"] == ["a,0.500000,0.500000,0.000000", "x,,,", "y,1.000000,0.000000,0.000000"]
    assert rows["pred"] == ["a,0.500000,1.000000,", "x,0.000000,0.000000,", "y,0.500000,0.000000,"]
    assert (tmp_path / "intent_confusion_raw.csv").read_text().splitlines()[2] == "x,0,0,0"


def test_save_confusion_reports_for_labels_and_entity_types(tmp_path):
    paths = save_confusion_reports(Y_TRUE, Y_PRED, LABELS, tmp_path, "intent", "test")
    names = [p.name for p in paths]
    assert names == [f"intent_confusion_{kind}.{ext}" for kind in ("raw", "true", "pred", "all") for ext in ("csv", "png")]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    entities = entity_confusion(ENTITY_TRUE, ENTITY_PRED)
    entity_paths = save_confusion_reports(entities.true_types, entities.pred_types, entities.labels, tmp_path, "entity",
                                          "test")
    raw_csv = entity_paths[0].read_text(encoding="utf-8").splitlines()
    assert raw_csv[0] == "true \\ predicted,LOC,MISC,ORG,PER,(none)"
    assert raw_csv[4] == "PER,0,0,0,2,1"


def test_confusion_reports_use_the_split_label_set_name_the_split_and_show_support(tmp_path, monkeypatch):
    drawn = []

    def record(matrix, labels, path, title, normalized, support=None):
        drawn.append((title, list(labels), list(support)))
        return path

    monkeypatch.setattr("nlu.evaluation.confusion.plot_heatmap", record)
    save_confusion_reports(Y_TRUE, Y_PRED, LABELS, tmp_path, "intent", "dev (data/dev.csv)")
    # "d" is a training class absent from gold and predictions: no row of zeros (one label set per evaluation)
    assert (tmp_path / "intent_confusion_raw.csv").read_text().splitlines()[0] == "true \\ predicted,a,b,c"
    assert [title for title, _, _ in drawn] == [
        "dev (data/dev.csv) · intent: counts",
        "dev (data/dev.csv) · intent: row-normalised (diagonal = recall)",
        "dev (data/dev.csv) · intent: column-normalised (diagonal = precision)",
        "dev (data/dev.csv) · intent: normalised over all",
    ]
    assert all(labels == ["a", "b", "c"] and support == [2, 3, 1] for _, labels, support in drawn)


def test_entity_counts_per_type():
    assert entity_counts([["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "B-PER"]]) == {"PER": 2, "LOC": 1}
    assert entity_counts([["I-ORG"]], mode="default") == {"ORG": 1}
