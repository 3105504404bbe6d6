"""What a figure was measured on: every report and run record carries this."""

from __future__ import annotations

import os
import platform
import resource
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")


@lru_cache(maxsize=1)
def cpu_model_and_flags() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and its instruction-set flags, from /proc/cpuinfo where there is one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), ()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return fields.get("model name", platform.machine()), tuple(fields.get("flags", "").split())


def describe_machine() -> dict[str, Any]:
    model, flags = cpu_model_and_flags()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": model,
        "cpu_flags": [flag for flag in FLAGS_OF_INTEREST if flag in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),  # it sets torch_threads, and the reader retypes it
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def peak_resident_mib() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec — ``ru_maxrss``
    keeps the parent's peak across fork and exec, so a small run started by a large sweep would
    report the sweep's memory. Elsewhere ``ru_maxrss`` (KiB; bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
