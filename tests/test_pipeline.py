"""The main job in --quick mode: every stage runs, the report and its files exist and make sense."""

import json
from pathlib import Path

import pytest

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
    for stage in ("ner-pretrained", "ner-scratch"):
        assert 0.0 <= results[stage]["summary"]["test_f1"] <= 1.0
    for stage in ("classify-pretrained", "classify-scratch"):
        summary = results[stage]["summary"]
        assert 0.0 <= summary["test_macro_f1"] <= 1.0 and 0.0 <= summary["test_accuracy"] <= 1.0
        recalls = [value for key, value in summary.items() if key.startswith("test_recall[")]
        assert len(recalls) == 3 and all(0.0 <= value <= 1.0 for value in recalls)
    figures = [report.parent / "pretraining_loss.png",
               report.parent / "ner-pretrained" / "entities_confusion_true.png",
               report.parent / "classify-scratch" / "labels_confusion_pred.png",
               report.parent / "classify-scratch" / "labels_confusion_all.csv"]
    for figure in figures:
        assert figure.stat().st_size > 0, figure
    again = run_pipeline("tasks/default.yaml", quick=True, runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    rerun = json.loads((again.parent / "results.json").read_text())
    assert all(entry["reused"] for entry in rerun.values())
