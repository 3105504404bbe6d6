"""scripts/ablate.py --quick end to end: every stage runs, the report, JSON and plot are written,
and a second invocation reuses the finished runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_ablation_writes_report_json_and_plot(tmp_path):
    out = tmp_path / "report" / "ablation"
    command = [sys.executable, str(ROOT / "scripts" / "ablate.py"), "--quick", "--runs", str(tmp_path / "runs"),
               "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(out.with_suffix(".json").read_text())
    variants = result["settings"]["variants"]
    assert variants == ["learned-post", "rotary-pre"] and result["settings"]["seeds"] == [1]
    for variant in variants:
        row = result["aggregate"]["variants"][variant]
        assert set(row) == {"mlm_loss", "ner_f1", "classify_macro_f1"}
        assert row["mlm_loss"]["mean"] > 0 and 0 <= row["ner_f1"]["mean"] <= 1
        assert len(result["aggregate"]["curves"][variant]) == 2  # evaluations at steps 3 and 6
    assert set(result["aggregate"]["pooling"]) == {"cls", "mean", "max"}
    lengths = result["aggregate"]["length_test"]
    assert set(lengths["learned-post"]) == {"windows_128", "windows_256"}  # learned positions must window
    assert set(lengths["rotary-pre"]) == {"windows_128", "whole_128", "windows_256", "whole_256"}
    runs = [json.loads(path.read_text()) for path in (tmp_path / "runs").glob("*/ner/length_test.json")]
    assert all(run["whole_256"]["extra_windows"] == 0 for run in runs if run["variant"] == "rotary-pre")
    assert all(run["windows_256"]["extra_windows"] > 0 for run in runs)
    assert result["long_inputs"]["256"]["min"] > 256
    report = out.with_suffix(".md").read_text()
    for heading in ("Position encoding × LayerNorm placement", "Pooling", "Inputs longer than the pretraining length",
                    "Recommendation", result["command"]):
        assert heading in report
    assert (out.parent / "ablation_mlm.png").stat().st_size > 0
    again = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600)
    assert again.stdout.count("reused") == 8  # 2 pretrain, 2 NER, 2 + 2 classification
