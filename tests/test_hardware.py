"""Device and precision choice: every branch, with the CPU flags, torch's capability and the GPU
faked, so the rule is checked on any host."""

import pytest
import torch

from nlu import hardware
from nlu.errors import ConfigError
from nlu.hardware import (Precision, autocast, choose_device, choose_precision, cpu_bf16_support,
                          reads_values)

X86_FLAGS = "fpu vme sse2 avx2 avx512f avx512bw avx512vl"


def fake_cpu(monkeypatch, tmp_path, flags: str | None, capability: str = "AVX512", key: str = "flags"):
    """/proc/cpuinfo with FLAGS (None: unreadable) and torch's CPU capability."""
    path = tmp_path / "cpuinfo"
    if flags is not None:
        path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\n{key}\t\t: {flags}\n\nprocessor\t: 1\n")
    monkeypatch.setattr(hardware, "CPUINFO", path)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.delenv(hardware.CPU_BF16_ENV, raising=False)


@pytest.mark.parametrize("flags, capability, native, evidence", [
    (X86_FLAGS + " avx512_bf16 avx512_vnni", "AVX512", True, "flag avx512_bf16, torch capability AVX512"),
    (X86_FLAGS + " amx_tile amx_bf16 amx_int8", "AVX512", True, "flag amx_bf16"),
    (X86_FLAGS, "AVX512", False, "no bf16 units"),
    (X86_FLAGS + " avx512_bf16", "AVX2", False, "torch runs at capability AVX2"),
    (None, "AVX512", False, "CPU flags unreadable"),
])
def test_cpu_bf16_detection(monkeypatch, tmp_path, flags, capability, native, evidence):
    fake_cpu(monkeypatch, tmp_path, flags, capability)
    found, reason = cpu_bf16_support()
    assert found is native and evidence in reason
    assert cpu_bf16_support()[0] is native


def test_arm_bf16_feature_counts_whatever_the_capability(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, "fp asimd sve bf16 i8mm", capability="DEFAULT", key="Features")
    assert cpu_bf16_support() == (True, "CPU has native bf16 (flag bf16, torch capability DEFAULT)")


@pytest.mark.parametrize("value, native", [("1", True), ("0", False)])
def test_environment_overrides_detection(monkeypatch, tmp_path, value, native):
    fake_cpu(monkeypatch, tmp_path, X86_FLAGS if native else X86_FLAGS + " avx512_bf16")
    monkeypatch.setenv("NLU_CPU_BF16", value)
    assert cpu_bf16_support() == (native, f"NLU_CPU_BF16={value}")
    assert choose_precision("auto", torch.device("cpu")).name == ("bf16" if native else "no")


def test_a_bad_override_is_refused(monkeypatch):
    monkeypatch.setenv("NLU_CPU_BF16", "yes")
    with pytest.raises(ConfigError, match="NLU_CPU_BF16 must be 0 or 1, got 'yes'"):
        cpu_bf16_support()


def test_the_real_host_is_read_without_error():
    native, reason = cpu_bf16_support()
    assert isinstance(native, bool) and reason


@pytest.mark.parametrize("flags, requested, name, reason", [
    (X86_FLAGS + " avx512_bf16", "auto", "bf16", "CPU has native bf16"),
    (X86_FLAGS, "auto", "no", "fp32: this CPU has no bf16 units"),
    (X86_FLAGS, "bf16", "bf16", "requested; expect it many times slower than fp32"),
    (X86_FLAGS + " avx512_bf16", "bf16", "bf16", "requested"),
    (X86_FLAGS + " avx512_bf16", "no", "no", "requested"),
])
def test_cpu_precision(monkeypatch, tmp_path, flags, requested, name, reason):
    fake_cpu(monkeypatch, tmp_path, flags)
    precision = choose_precision(requested, torch.device("cpu"))
    assert precision.name == name and precision.reason.startswith(reason)


def fake_gpu(monkeypatch, name: str, capability: tuple[int, int], count: int = 1):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)


@pytest.mark.parametrize("gpu, capability, requested, name, reason", [
    ("NVIDIA H200", (9, 0), "auto", "bf16", "GPU with bf16 units (NVIDIA H200, compute capability 9.0)"),
    ("NVIDIA A100-SXM4-80GB", (8, 0), "auto", "bf16", "GPU with bf16 units"),
    ("Tesla V100-SXM2-16GB", (7, 0), "auto", "fp16", "GPU without bf16 units (Tesla V100-SXM2-16GB, compute "
                                                     "capability 7.0): fp16 with loss scaling"),
    ("Tesla T4", (7, 5), "bf16", "bf16", "requested; this GPU emulates bf16"),
    ("NVIDIA H200", (9, 0), "no", "no", "requested (NVIDIA H200"),
])
def test_gpu_precision(monkeypatch, gpu, capability, requested, name, reason):
    fake_gpu(monkeypatch, gpu, capability)
    precision = choose_precision(requested, torch.device("cuda"))
    assert precision.name == name and precision.reason.startswith(reason)


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match=r"mixed precision must be one of auto, no, bf16, fp16; got False"):
        choose_precision(False, torch.device("cpu"))


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device(None) == choose_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device 'cuda' was asked for, but torch sees no CUDA GPU here"):
        choose_device("cuda")
    fake_gpu(monkeypatch, "NVIDIA H200", (9, 0), count=1)
    assert choose_device(None) == torch.device("cuda")
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match=r"device 'cuda:1' was asked for, but this machine has 1 CUDA GPU\(s\)"):
        choose_device("cuda:1")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        choose_device("gpu0")


def test_autocast_runs_matmuls_in_the_chosen_dtype_and_fp32_is_untouched():
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), Precision("bf16", "test")):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), Precision("no", "test")):
        assert (a @ a).dtype == torch.float32
    assert Precision("bf16", "x").dtype == torch.bfloat16 and Precision("no", "x").dtype is None
    assert str(Precision("no", "fp32: why")) == "fp32 (fp32: why)"


def test_value_checks_run_on_the_cpu_and_on_a_gpu_only_in_debug(monkeypatch):
    monkeypatch.delenv("NLU_DEBUG", raising=False)
    assert reads_values(torch.device("cpu")) and not reads_values(torch.device("cuda:0"))
    monkeypatch.setenv("NLU_DEBUG", "1")
    assert reads_values(torch.device("cuda:0"))
    monkeypatch.setenv("NLU_DEBUG", "0")
    assert not reads_values(torch.device("cuda"))
