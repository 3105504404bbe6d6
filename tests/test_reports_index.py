"""reports/README.md and the README's results block are what scripts/reports_index.py makes from the reports' JSON."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import reports_index  # noqa: E402


def test_the_results_index_and_readme_block_are_up_to_date(capsys):
    assert reports_index.main(["--check"]) == 0, capsys.readouterr().err


def test_reports_of_one_title_are_told_apart_by_their_names():
    lines = reports_index.index_lines(reports_index.REPORTS)
    assert len(lines) == len(reports_index.reports())
    assert sum(line.startswith("- [Pretrained vs random initialisation: NER (init_ner_rotary)](init_ner_rotary/sweep.md)")
               for line in lines) == 1
    assert any(line.startswith("- [Imbalance remedies compared (issue #5)](imbalance/sweep.md)") for line in lines)  # unique
