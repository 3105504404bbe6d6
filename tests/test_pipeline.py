"""The main job in --quick mode: every stage runs, the report and its files exist and make sense."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nlu.data.classification import read_table
from nlu.data.ner import read_ner_file
from nlu.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_main_job_writes_a_sane_report_and_reuses_finished_stages(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    report = run_pipeline("tasks/default.yaml", quick=True, runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    assert report == tmp_path / "reports" / "default-quick" / "report.md"
    text = report.read_text()
    for heading in ("Pretraining (MLM + NSP)", "NER", "Imbalanced classification", "Exact configuration"):
        assert heading in text
    results = json.loads((report.parent / "results.json").read_text())
    assert set(results) == {"pretrain", "ner-pretrained", "ner-scratch", "classify-pretrained", "classify-scratch"}
    assert results["pretrain"]["summary"]["steps"] == 30
    gold_entities = sum(tag.startswith("B-") for s in read_ner_file(ROOT / "data/ner/wnut16/test.conll") for tag in s.tags)
    for stage in ("ner-pretrained", "ner-scratch"):  # every gold test entity scored
        metrics = json.loads((tmp_path / "runs" / "default-quick" / stage / "test" / "metrics.json").read_text())
        assert metrics["entity_strict"]["averages"]["micro"]["support"] == gold_entities
    for stage in ("classify-pretrained", "classify-scratch"):  # the summary's figures are the confusion matrix's
        summary = results[stage]["summary"]
        with open(report.parent / stage / "labels_confusion_raw.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        labels, counts = rows[0][1:], np.array([[int(v) for v in row[1:]] for row in rows[1:]])
        assert counts.sum() == len(read_table(ROOT / "data/classification/rotten_tomatoes/test.csv"))
        assert summary["test_accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
        for index, label in enumerate(labels):
            assert summary[f"test_recall[{label}]"] == pytest.approx(counts[index, index] / counts[index].sum())
    figures = [report.parent / "pretraining_loss.png",
               report.parent / "ner-pretrained" / "entities_confusion_true.png",
               report.parent / "classify-scratch" / "labels_confusion_pred.png",
               report.parent / "classify-scratch" / "labels_confusion_all.csv"]
    for figure in figures:
        assert figure.stat().st_size > 0, figure
    again = run_pipeline("tasks/default.yaml", quick=True, runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    rerun = json.loads((again.parent / "results.json").read_text())
    assert all(entry["reused"] for entry in rerun.values())
