"""Which device and which precision to compute in, decided from the hardware at hand.

bf16 autocast pays only where the hardware multiplies bf16 natively: on this project's CPU
(AVX512-BF16) a bf16 matmul runs 4.5× an fp32 one, but on a CPU without such units oneDNN
emulates it and the same step runs several times *slower* than fp32. So ``auto`` asks the
hardware: bf16 on CPUs with AVX512-BF16 or AMX and on GPUs with bf16 units (Ampere on), fp16
with loss scaling on older GPUs, fp32 otherwise. Under autocast the weights, optimizer states,
softmax, LayerNorm and losses stay fp32 (autocast's op lists); only matmuls run in 16 bits.

Training (Accelerate's ``mixed_precision``) and inference (:func:`autocast`) use the same rule.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from nlu.errors import ConfigError

PRECISIONS = ("auto", "no", "bf16", "fp16")
CPUINFO = Path("/proc/cpuinfo")
DEBUG_ENV = "NLU_DEBUG"
CPU_BF16_ENV = "NLU_CPU_BF16"
"""Set to 1 or 0 to say whether this CPU has native bf16, overriding detection (e.g. in a VM that
hides CPU flags, or to force fp32 on a host where bf16 measured slower)."""

# Flags in /proc/cpuinfo (x86: flags, aarch64: Features) of instructions that multiply bf16 natively.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    """What to compute in — Accelerate's ``mixed_precision`` name — and why it was chosen."""

    name: str  # "bf16" | "fp16" | "no"
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype; None for fp32."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def __str__(self) -> str:
        return f"{'fp32' if self.name == 'no' else self.name} ({self.reason})"


def _cpu_flags() -> set[str] | None:
    """The first processor's instruction-set flags; None where /proc/cpuinfo is not readable."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU multiplies bf16 natively, and the evidence, in words."""
    override = os.environ.get(CPU_BF16_ENV)
    if override is not None:
        if override not in ("0", "1"):
            raise ConfigError(f"{CPU_BF16_ENV} must be 0 or 1, got {override!r}")
        return override == "1", f"{CPU_BF16_ENV}={override}"
    flags = _cpu_flags()
    if flags is None:
        return False, "CPU flags unreadable (no /proc/cpuinfo); set NLU_CPU_BF16=1 if this CPU has bf16 units"
    found = [flag for flag in _BF16_FLAGS if flag in flags]
    if not found:
        return False, "this CPU has no bf16 units (no avx512_bf16 / amx_bf16 flag)"
    capability = torch.backends.cpu.get_cpu_capability()
    # On x86, torch's element-wise bf16 code is vectorised at AVX512 only; below it (an older
    # build, or ATEN_CPU_CAPABILITY=avx2) every cast and add around the matmuls runs slowly.
    if found[0] in _X86_BF16_FLAGS and capability != "AVX512":
        return False, f"CPU flag {found[0]} present but torch runs at capability {capability}"
    return True, f"CPU has native bf16 (flag {found[0]}, torch capability {capability})"


def choose_device(requested: str | None = None) -> torch.device:
    """``None`` or ``"auto"``: the GPU if there is one, else the CPU. A named device is honoured
    or refused in one line if this machine lacks it."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"unknown device {requested!r} (use auto, cpu, cuda or cuda:N)") from error
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {requested!r} was asked for, but torch sees no CUDA GPU here")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {requested!r} was asked for, but this machine has {count} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {requested!r} was asked for, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {requested!r} (use auto, cpu, cuda or cuda:N)")
    return device


def choose_precision(requested: str, device: torch.device) -> Precision:
    """Resolve ``auto`` from the hardware; an explicit choice is kept, with a warning in its reason
    where the hardware would make it slow."""
    if requested not in PRECISIONS:
        raise ConfigError(f"mixed precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        gpu = f"{name}, compute capability {major}.{minor}"
        native = major >= 8  # bf16 tensor cores arrived with Ampere
        if requested == "auto":
            if native:
                return Precision("bf16", f"GPU with bf16 units ({gpu})")
            return Precision("fp16", f"GPU without bf16 units ({gpu}): fp16 with loss scaling")
        if requested == "bf16" and not native:
            return Precision("bf16", f"requested; this GPU emulates bf16 ({gpu}), fp16 would be faster")
        return Precision(requested, f"requested ({gpu})")
    if device.type == "cpu":
        native, evidence = cpu_bf16_support()
        if requested == "auto":
            return Precision("bf16", evidence) if native else Precision("no", f"fp32: {evidence}")
        if requested == "bf16" and not native:
            return Precision("bf16", f"requested; expect it many times slower than fp32 (25x for a 384-wide "
                                     f"layer on an AVX2-only host): {evidence}")
        return Precision(requested, "requested")
    if requested == "auto":
        return Precision("no", f"fp32: no precision rule for device type {device.type!r}")
    return Precision(requested, "requested")


def reads_values(device: torch.device) -> bool:
    """Whether checks that read tensor values (token ids in range, labels only on real tokens) run
    on DEVICE: always on the CPU, where a read costs nothing; on a GPU only with NLU_DEBUG=1, since
    each read waits for the device to finish its queue (a host sync in every forward). Not inside a
    graph torch.compile traces either (unless NLU_DEBUG=1): each read would cut it into pieces
    compiled one by one (on the CPU, 12 graphs instead of 4 for a token classifier)."""
    if os.environ.get(DEBUG_ENV, "0") not in ("", "0"):
        return True
    return torch.device(device).type == "cpu" and not torch.compiler.is_compiling()


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """The inference counterpart of training's mixed precision: autocast to the chosen dtype
    (weights stay fp32), or nothing for fp32."""
    if precision.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=precision.dtype)
