"""scripts/gpu_check.sh cannot rot: its dry run (the GPU check's every step, on the CPU at tiny
sizes) runs here, and the GPU-only arithmetic (dense peaks, utilisation) is checked by hand."""

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nlu.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "scripts"))
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L4", 121.0), ("Tesla V100-SXM2-16GB", None),
])
def test_gpu_dense_peaks_by_device_name(name, tflops):
    peak = script("bench").gpu_dense_peak(name)
    assert peak == (None if tflops is None else tflops * 1e12)


def test_bench_measures_gpu_utilisation_against_the_dense_peak():
    """A GPU bench result as bench.py writes it: 100 ms for 48.4 TFLOP of model work on an H200 is
    484 TFLOP/s, 48.9% of its 989 TFLOP/s bf16 dense peak."""
    seconds = {"nlu": 0.1, "transformers dense": 0.2, "transformers sparse (by hand)": 0.15}
    results = {"command": "scripts/gpu_check.sh", "device": "cuda", "precision": "bf16", "clock": "wall",
               "gpu": {"name": "NVIDIA H200", "dense_bf16_peak_flops": 989e12},
               "matmul_peak_flops": {"fp32": 50e12, "bf16": 780e12},
               "matmul_peak_readings": [{"fp32": 50e12, "bf16": 780e12}],
               "configs": {"base": {"options": {}, "pretraining": {"tokens": 4096, "masked": 600, "useful_flops": 48.4e12,
                                                                   "nlu_executed_flops": 40e12, "seconds": seconds}}},
               "machine": {"cpu": "x", "cpu_flags": [], "cores": 16, "gpu": "NVIDIA H200", "torch": "2.11",
                           "torch_threads": 16, "python": "3.12", "load_average": [0.1, 0.1, 0.1]}}
    text = script("bench").render(results)
    assert "the NVIDIA H200's bf16 dense peak, 989 TFLOP/s" in text
    assert "| nlu | 40,960 | 2.00× | 48.9% | – |" in text and "| transformers dense | 20,480 | 1.00× | 24.5% | – |" in text


def test_a_failing_step_is_reported_and_the_next_still_runs():
    gpu_check, failures = script("gpu_check"), []

    def broken() -> dict:
        raise RuntimeError("CUDA error: out of memory\nmore detail")

    assert gpu_check.attempt("bench", broken, failures) is None
    assert gpu_check.attempt("parity", lambda: {"ok": True}, failures) == {"ok": True}
    assert failures == ["bench: RuntimeError: CUDA error: out of memory"]
    results = {"command": "scripts/gpu_check.sh", "dry_run": False, "failures": failures,
               "machine": {"cpu": "x", "cpu_flags": [], "cores": 16, "gpu": "NVIDIA H200", "torch": "2.11",
                           "torch_threads": 16, "python": "3.12", "load_average": [0.1, 0.1, 0.1]}}
    assert "**Failed:**\n\n- bench: RuntimeError: CUDA error: out of memory" in gpu_check.render(results)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_dry_run_runs_every_step_and_writes_the_report(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["dry_run"] and report["tests"]["status"] == 0 and report["failures"] == []
    assert report["parity"]["fp32"]["worst"] <= 1e-5 and report["parity"]["bf16"]["worst"] <= 5e-2
    assert len(report["parity"]["bf16"]["differences"]["tiny"]) == 14  # 7 outputs, both directions
    bench = json.loads((tmp_path / "bench_bf16.json").read_text())
    assert set(bench["configs"]["tiny"]["pretraining"]["seconds"]) == {
        "transformers dense", "transformers sparse (by hand)", "nlu", "nlu in fp32 (no autocast)"}
    sweep = json.loads((tmp_path / "gpu_panx" / "sweep.json").read_text())
    batch = load_settings(ROOT / "tasks" / "panx_de.yaml", [], task="ner").training.batch_size
    steps = {row: [run["figures"]["steps"] for run in entry["runs"]] for row, entry in sweep["rows"].items()}
    assert steps == {"nlu": [math.ceil(16 / batch)], "transformers Trainer": [math.ceil(16 / batch)]}  # one epoch
    assert "dry run on the CPU" in (tmp_path / "gpu.md").read_text()
