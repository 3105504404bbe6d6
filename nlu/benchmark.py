"""What every speed measurement shares: a clock that waits for the device, the training step being
timed, runs alternated step by step, where the operator time goes, peak memory, and the matmul
peak that utilisation is measured against.

Alternation is the rule because the hosts are shared: a run timed after another sees different
load, while runs interleaved step by step see the same drift. scripts/bench.py (and gpu_check.py
through it) builds its comparisons from these pieces, which are tested here once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import transformers

# Dense (no sparsity) tensor-core peaks in TFLOP/s, bf16 with fp32 accumulation, from the vendors'
# datasheets; matched in order against torch.cuda.get_device_name().
GPU_DENSE_PEAKS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0), ("H100", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0),
)

CONFIGS = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256),  # smoke tests
    "small": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
}
"""The encoder sizes the speed studies compare at (scripts/bench.py, bench_pretrain_curve.py), with BERT's vocabulary."""
VOCAB = 30522

Step = Callable[[int], Any]
"""A unit of timed work, given the round it runs in (to pick its batch)."""


def bert_config(options: dict, labels: list[str] | None = None) -> "transformers.BertConfig":
    """transformers' BertConfig of a CONFIGS entry: BERT's vocabulary and dropout, SDPA attention.
    Its nlu twin (the same weights) is ``nlu.interop.from_transformers(model)``."""
    import transformers

    extra = {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}} if labels else {}
    return transformers.BertConfig(vocab_size=VOCAB, hidden_size=options["hidden_size"],
                                   num_hidden_layers=options["num_layers"], num_attention_heads=options["num_heads"],
                                   intermediate_size=options["intermediate_size"], hidden_dropout_prob=0.1,
                                   attention_probs_dropout_prob=0.1, attn_implementation="sdpa", **extra)


def gpu_dense_peak(name: str) -> float | None:
    """bf16 dense FLOP/s of the GPU called NAME, or None when it is not in the table."""
    return next((tflops * 1e12 for key, tflops in GPU_DENSE_PEAKS if key in name), None)


class Clock:
    """Seconds of a step: wall-clock (waiting for the device's queue on CUDA), or with ``cpu_time``
    the CPU seconds of this thread, which on a shared host counts the step's own work and not the
    time other processes held the cores (valid with one torch thread: the work is all on this one)."""

    def __init__(self, device: torch.device | str = "cpu", cpu_time: bool = False):
        self.sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
        self.now = time.thread_time if cpu_time else time.perf_counter

    def __call__(self, work: Callable[[], Any]) -> float:
        self.sync()
        started = self.now()
        work()
        self.sync()
        return self.now() - started


def matmul_peak(dtype: torch.dtype, clock: Clock, device: torch.device | str, size: int = 2048,
                repeats: int = 10, enough_seconds: float = 0.05) -> float:
    """Matmul FLOP/s in DTYPE: the fastest of REPEATS products (4 × SIZE square on a GPU). The
    fastest, not the median: on a shared host the rate drifts by ±10% over minutes, and a low
    reading would push a utilisation measured against it past 100%. On a CPU the side doubles from
    256 until one product takes ENOUGH_SECONDS (at most SIZE): a dtype the CPU only emulates (bf16
    without AVX512-BF16 or AMX) runs at about 1 GFLOP/s, where eleven 2048-sided products take
    minutes for a rate that is already flat at 512."""
    device = torch.device(device)
    if device.type == "cuda":
        size *= 4
    else:
        side = min(256, size)
        while side < size and clock(lambda side=side: torch.mm(*(torch.ones(side, side, dtype=dtype)
                                                                  for _ in range(2)))) < enough_seconds:
            side = min(2 * side, size)
        size = side
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    clock(lambda: torch.mm(a, b))
    return 2 * size**3 / min(clock(lambda: torch.mm(a, b)) for _ in range(repeats))


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  loss: Callable[[torch.nn.Module, Any], torch.Tensor], batches: Sequence[Any] = (None,),
                  autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                  max_grad_norm: float | None = None, scheduler: Any = None) -> Step:
    """One optimizer step on ``batches[round % len(batches)]``: forward under a fresh AUTOCAST()
    (weights and optimizer stay fp32, as Accelerate's mixed precision keeps them), backward,
    optional clipping and schedule. The step every side of a comparison runs, so no side is timed
    doing less. Train mode is set on every step: a comparison may run an inference pass of the same
    model (eval mode) between two of its steps."""

    def step(round_: int = 0) -> None:
        model.train()
        with autocast():
            value = loss(model, batches[round_ % len(batches)])
        value.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def alternate(steps: Mapping[str, Step], rounds: int, clock: Clock, warmup: int = 0,
              readings: Mapping[str, int] | None = None) -> dict[str, list[float]]:
    """Seconds of every step in each of ROUNDS rounds after WARMUP untimed ones. Within a round
    the steps run one after another in an order rotated every round, so none always follows the
    same one; READINGS caps how many rounds a long step (a whole inference pass) takes part in."""
    names, limits = list(steps), readings or {}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if round_ >= warmup and len(seconds[name]) >= limits.get(name, rounds):
                continue
            elapsed = clock(lambda: steps[name](round_))
            if round_ >= warmup:
                seconds[name].append(elapsed)
    return seconds


def operator_times(work: Callable[[], Any]) -> dict[str, float]:
    """Self CPU seconds per operator (torch.profiler's key) over one call of WORK."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiled:
        work()
    return {event.key: event.self_cpu_time_total / 1e6 for event in profiled.key_averages()}


def operator_shares(times: Mapping[str, float], groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Each group's share of the total, an operator counted in the first group that names it (as a
    part of its lower-cased key); the rest is "other"."""
    total = sum(times.values()) or 1.0
    shares = dict.fromkeys([*groups, "other"], 0.0)
    for key, value in times.items():
        group = next((label for label, parts in groups.items() if any(part in key.lower() for part in parts)), "other")
        shares[group] += value / total
    return shares


def memory_status(field: str) -> int:
    """VmRSS / VmHWM (peak) of this process in bytes, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory_growth(step: Step, rounds: int, device: torch.device | str) -> int:
    """Bytes by which ROUNDS of STEP raise the peak over what is held before them. On CUDA the
    allocator's peak; on the CPU the process's resident peak, reset first (Linux clear_refs) so
    that building models and inputs does not mask the step's own — which makes it a measure of
    one run only in a process of its own."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        for round_ in range(rounds):
            step(round_)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    Path("/proc/self/clear_refs").write_text("5")
    before = memory_status("VmRSS")
    for round_ in range(rounds):
        step(round_)
    return memory_status("VmHWM") - before
