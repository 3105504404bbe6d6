"""reports/README.md and the README's results block are what scripts/reports_index.py makes from the reports' JSON."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_results_index_and_readme_block_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "reports_index.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
