"""reports/README.md and the README's results block are what scripts/reports_index.py makes from the reports' JSON."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_results_index_and_readme_block_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "reports_index.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_reports_of_one_title_are_told_apart_by_their_names():
    sys.path.insert(0, str(ROOT / "scripts"))
    import reports_index

    lines = reports_index.index_lines(reports_index.REPORTS)
    assert len(lines) == len(reports_index.reports())
    assert sum(line.startswith("- [Pretrained vs random initialisation: NER (init_ner_rotary)](init_ner_rotary/sweep.md)")
               for line in lines) == 1
    assert any(line.startswith("- [Imbalance remedies compared (issue #5)](imbalance/sweep.md)") for line in lines)  # unique
