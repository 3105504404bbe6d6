"""nlu.benchmark: the pieces every speed comparison is measured with."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nlu.benchmark import (Clock, alternate, gpu_dense_peak, matmul_peak, operator_shares, operator_times,
                           training_step)


class CountingClock(Clock):
    """A clock that reads 1 s for every step."""

    def __call__(self, work) -> float:
        work()
        return 1.0


def test_alternate_rotates_the_order_skips_warmup_and_caps_readings():
    clock = CountingClock("cpu")
    calls: list[tuple[str, int]] = []
    steps = {name: (lambda round_, name=name: calls.append((name, round_))) for name in ("a", "b", "c")}
    seconds = alternate(steps, rounds=3, clock=clock, warmup=1, readings={"c": 1})
    # round 0 (warm-up): a b c; round 1: b c a; round 2: c a b (c's one reading); round 3: a b (c capped)
    assert calls == [("a", 0), ("b", 0), ("c", 0), ("b", 1), ("c", 1), ("a", 1),
                     ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert seconds == {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0], "c": [1.0]}


def test_operator_shares_first_group_wins_and_the_rest_is_other():
    times = {"aten::addmm": 3.0, "aten::mm": 1.0, "aten::add_": 2.0, "aten::gelu": 4.0}
    substring = operator_shares(times, {"matmul": ("mm",), "elementwise": ("add",)})
    # "aten::addmm" holds both "mm" and "add": the first group listed takes it
    assert substring == pytest.approx({"matmul": 0.4, "elementwise": 0.2, "other": 0.4})
    assert operator_shares(times, {"gelu": ("gelu",)}) == pytest.approx({"gelu": 0.4, "other": 0.6})


def test_operator_times_sees_the_matmuls_of_the_work():
    a = torch.randn(64, 64)
    times = operator_times(lambda: [a @ a for _ in range(3)])
    assert times.get("aten::mm", 0.0) > 0.0
    assert operator_shares(times, {"mm": ("aten::mm",)})["mm"] > 0.5


def test_training_step_clips_steps_the_schedule_and_cycles_batches():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    batches = [torch.full((1, 4), 100.0), torch.full((1, 4), -100.0)]
    seen: list[float] = []

    def loss(model, batch):
        seen.append(float(batch[0, 0]))
        return model(batch).sum()

    step = training_step(model, optimizer, loss, batches, max_grad_norm=1.0, scheduler=schedule)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    step(0)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    # the gradient (100, 100, 100, 100, 1) is clipped to norm 1 and applied at lr 1.0
    assert torch.linalg.vector_norm(after - before).item() == pytest.approx(1.0, rel=1e-5)
    assert schedule.get_last_lr() == [0.5]
    step(3)  # round 3 takes batches[1]
    assert seen == [100.0, -100.0]
    assert all(p.grad is None for p in model.parameters())


def test_training_step_runs_each_forward_in_train_mode_under_a_fresh_autocast():
    model = torch.nn.Linear(8, 8)
    dtypes: list[torch.dtype] = []

    def loss(model, _batch):
        output = model(torch.randn(2, 8))
        dtypes.append(output.dtype)
        return output.float().sum()

    step = training_step(model, torch.optim.SGD(model.parameters(), lr=0.1), loss,
                         autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    step(0)
    model.eval()  # an inference pass of the same model between two steps
    step(1)
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert model.training
    assert model.weight.dtype == torch.float32


GROWTH_OF_64_MIB = """
import torch
from nlu.benchmark import peak_memory_growth
held = []
print(peak_memory_growth(lambda _round: held.append(torch.ones(16 * 2**20 // 4)), rounds=4, device="cpu"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_peak_memory_growth_counts_what_the_step_allocates():
    # In a process of its own, as bench.py measures it: in a long-lived one the allocator hands
    # back pages that are already resident, and the peak does not move.
    done = subprocess.run([sys.executable, "-c", GROWTH_OF_64_MIB], capture_output=True, text=True, check=True)
    assert 56 * 2**20 <= int(done.stdout.split()[-1]) <= 96 * 2**20


def test_matmul_peak_is_a_positive_rate_and_gpu_peaks_match_the_most_specific_name():
    assert matmul_peak(torch.float32, Clock("cpu"), "cpu", size=128, repeats=2) > 1e6
    assert gpu_dense_peak("NVIDIA H100 PCIe") == 756e12
    assert gpu_dense_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_dense_peak("Tesla T4") is None
