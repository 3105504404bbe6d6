"""nlu.reporting: the measured worker process every comparison script runs its sides in."""

import pytest

from nlu.reporting import measured_run

WORKER = """
import sys

from nlu.reporting import measured_worker

def work(spec):
    if spec["x"] < 0:
        raise ValueError("x must not be negative")
    return {"twice": 2 * spec["x"], "argv": sys.argv[1:]}

measured_worker(sys.argv[2], work)
"""


@pytest.mark.slow
def test_a_measured_run_is_its_own_process_its_result_reused_only_when_asked(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(WORKER)
    folder = tmp_path / "runs" / "one"
    result = measured_run(script, {"x": 21, "threads": 1}, folder)
    assert result["twice"] == 42 and result["argv"] == ["--worker", str(folder / "spec.json")]
    assert result["threads"] == 1 and result["peak_rss_mib"] > 50  # the worker's own peak (it imported torch)
    assert isinstance(result["load_before"], float) and isinstance(result["load_after"], float)

    script.write_text("raise SystemExit('must not run again')")
    assert measured_run(script, {"x": 0, "threads": 1}, folder, reuse=True) == result  # read back, not rerun
    script.write_text(WORKER)
    assert measured_run(script, {"x": 1, "threads": 1}, folder)["twice"] == 2  # without reuse: measured afresh

    with pytest.raises(SystemExit, match=r"(?s)one failed \(exit 1\); log .*log\.txt:\n.*ValueError: x must not be negative"):
        measured_run(script, {"x": -1, "threads": 1}, folder)
