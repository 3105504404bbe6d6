"""A full disk or a read-only file system ends a command with one line, not a traceback (issue 19).

Real file systems: a 256 KiB tmpfs (full after a few files) and one remounted read-only. Both
need root and the mount command; elsewhere the tests say so and skip.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tests" / "data" / "news120_wordpiece1000"


@pytest.fixture
def small_mount(tmp_path):
    point = tmp_path / "mount"
    point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip() or 'not root'})")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def finetune(output_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    sentences = (ROOT / "data" / "ner" / "wnut16" / "train.conll").read_text(encoding="utf-8").split("\n\n")[:40]
    train = tmp_path / "train.conll"
    train.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "nlu.cli", "finetune", "ner", "--config", str(ROOT / "tasks" / "wnut16_ner.yaml"),
         f"data.train={train}", f"data.dev={train}", f"data.test={train}", f"data.tokenizer={TOKENIZER}",
         f"training.output_dir={output_dir}", "training.max_steps=4", "training.save_every=2", "model.hidden_size=64",
         "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=128"],
        capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow
def test_a_full_disk_is_one_line(small_mount, tmp_path):
    result = finetune(small_mount / "run", tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "nlu: error: " in line]
    assert len(errors) == 1 and "o space left on device" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_read_only_file_system_is_one_line(small_mount, tmp_path):
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    result = finetune(small_mount / "run", tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "nlu: error: " in line]
    assert len(errors) == 1 and "Read-only file system" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
