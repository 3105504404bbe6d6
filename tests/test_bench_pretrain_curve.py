"""scripts/bench_pretrain_curve.py: the time-to-quality reading, a short run, and the report from its JSON."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_pretrain_curve import main, render, time_to_reach  # noqa: E402


def curve(*points):
    return [{"seconds": s, "heldout_mlm_loss": loss} for s, loss in points]


def test_time_to_reach_interpolates_between_scored_points():
    # 9.0 at 10 s, 7.0 at 20 s: 8.5 is a quarter of the way down, at 12.5 s
    assert time_to_reach(curve((0, 10.0), (10, 9.0), (20, 7.0)), 8.5) == pytest.approx(12.5)
    assert time_to_reach(curve((0, 10.0), (10, 9.0)), 9.0) == pytest.approx(10.0)
    assert time_to_reach(curve((0, 10.0), (10, 9.0), (20, 9.5), (30, 8.0)), 8.0) == pytest.approx(30.0)


def test_time_to_reach_is_none_when_the_curve_never_gets_there():
    assert time_to_reach(curve((0, 10.0), (10, 9.0)), 8.0) is None


@pytest.mark.slow
def test_short_run_scores_both_models_alike_at_the_start_and_writes_the_report(tmp_path, capsys):
    assert main(["--seconds", "2", "--points", "1", "--heldout-pairs", "8", "--warmup-steps", "1", "--precision", "no",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "pretrain_curve.json").read_text())
    ours, reference = result["nlu"]["curve"], result["transformers"]["curve"]
    # same initial weights scored on the same masked pairs: the same loss, near ln(30522) = 10.33
    assert ours[0]["heldout_mlm_loss"] == pytest.approx(reference[0]["heldout_mlm_loss"], abs=1e-4)
    assert 9.5 < ours[0]["heldout_mlm_loss"] < 11.0
    for run in (result["nlu"], result["transformers"]):
        assert run["train_seconds"] >= 2 and run["steps"] >= 1 and len(run["curve"]) == 2
    assert result["reference_final_loss"] == reference[-1]["heldout_mlm_loss"]
    assert result["nlu_seconds_to_reference_final"] == time_to_reach(ours, result["reference_final_loss"])
    assert (tmp_path / "pretrain_curve.png").stat().st_size > 10_000
    report = (tmp_path / "pretrain_curve.md").read_text()
    assert result["command"] in report and "--seconds 2" in result["command"]
    assert f"| nlu | {result['nlu']['steps']} |" in report


def test_the_committed_report_renders_from_its_json():
    result = json.loads((ROOT / "reports" / "pretrain_curve.json").read_text())
    text = render(result)
    assert f"**{result['fraction_of_reference_time']:.2f}** of the reference's" in text
    assert text.count("\n| ") == 1 + 2 + 1 + len(result["nlu"]["curve"])  # two tables: header and rows
