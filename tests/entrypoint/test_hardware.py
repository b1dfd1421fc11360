"""The entry point's hardware choices, per GPU kind and CPU, without a GPU: pure functions of a Machine."""

from __future__ import annotations

import dataclasses

import pytest

from sagefinetune.entrypoint import hardware
from sagefinetune.entrypoint.hardware import Machine, choose, choose_precision

AVX512_BF16 = frozenset({"sse4_2", "avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
AMX = frozenset({"avx512f", "amx_tile", "amx_bf16", "amx_int8"})
PLAIN_X86 = frozenset({"sse4_2", "avx2", "avx512f"})
GRAVITON3 = frozenset({"fp", "asimd", "sve", "bf16", "i8mm"})


def gpu(name: str, capability: tuple[int, int], cores: int = 8, processes: int = 1) -> Machine:
    return Machine(cuda=True, capability=capability, gpu_name=name, cpu_flags=PLAIN_X86, cpu_count=cores,
                   local_processes=processes)


# the GPUs of the instance families sagefinetune lists, by compute capability
V100 = gpu("Tesla V100-SXM2-16GB", (7, 0), cores=64, processes=8)  # ml.p3.16xlarge
T4 = gpu("Tesla T4", (7, 5), cores=4)  # ml.g4dn.xlarge
A10G = gpu("NVIDIA A10G", (8, 6), cores=4)  # ml.g5.xlarge
L4 = gpu("NVIDIA L4", (8, 9), cores=8)  # ml.g6.2xlarge
A100 = gpu("NVIDIA A100-SXM4-40GB", (8, 0), cores=96, processes=8)  # ml.p4d.24xlarge
H100 = gpu("NVIDIA H100 80GB HBM3", (9, 0), cores=192, processes=8)  # ml.p5.48xlarge
CPU_BF16 = Machine(cuda=False, cpu_flags=AVX512_BF16, cpu_count=2)  # this kind of machine (AMD EPYC, avx512_bf16)
CPU_AMX = Machine(cuda=False, cpu_flags=AMX, cpu_count=8)  # Sapphire Rapids
CPU_PLAIN = Machine(cuda=False, cpu_flags=PLAIN_X86, cpu_count=4)
CPU_ARM = Machine(cuda=False, cpu_flags=GRAVITON3, cpu_count=4)


@pytest.mark.parametrize(("machine", "auto", "tf32"), [
    (V100, "fp16", False), (T4, "fp16", False),
    (A10G, "bf16", True), (L4, "bf16", True), (A100, "bf16", True), (H100, "bf16", True),
    (CPU_BF16, "bf16", False), (CPU_AMX, "bf16", False), (CPU_ARM, "bf16", False), (CPU_PLAIN, "fp32", False),
])
def test_auto_precision_and_tf32_per_device(machine, auto, tf32):
    chosen = choose("auto", machine)
    assert chosen.precision == auto and chosen.tf32 is tf32
    assert chosen.why[0].startswith(f"precision {auto} (auto: ")
    assert chosen.training_arguments()["bf16"] is (auto == "bf16")
    assert chosen.training_arguments()["fp16"] is (auto == "fp16")
    assert chosen.training_arguments()["use_cpu"] is (not machine.cuda)


@pytest.mark.parametrize(("preference", "machine", "expected", "said"), [
    ("bf16", V100, "fp16", "not supported by Tesla V100"),
    ("bf16", T4, "fp16", "not supported by Tesla T4"),
    ("bf16", CPU_PLAIN, "fp32", "not supported by this CPU (no bf16 instructions)"),
    ("bf16", CPU_BF16, "bf16", "as asked"),
    ("bf16", A100, "bf16", "as asked"),
    ("fp16", CPU_BF16, "fp32", "needs a GPU"),
    ("fp16", A10G, "fp16", "as asked"),
    ("fp32", H100, "fp32", "as asked"),
    ("fp32", CPU_BF16, "fp32", "as asked"),
])
def test_an_explicit_precision_wins_where_the_device_has_it(preference, machine, expected, said):
    precision, why = choose_precision(preference, machine)
    assert precision == expected and said in why


@pytest.mark.parametrize(("machine", "optim", "workers", "pinned"), [
    (V100, "adamw_torch_fused", 4, True),  # 64 cores / 8 GPUs - 1 = 7, at most 4
    (T4, "adamw_torch_fused", 3, True),  # 4 cores, one process
    (A10G, "adamw_torch_fused", 3, True),
    (A100, "adamw_torch_fused", 4, True),
    (H100, "adamw_torch_fused", 4, True),
    (gpu("NVIDIA A10G", (8, 6), cores=48, processes=4), "adamw_torch_fused", 4, True),  # ml.g5.12xlarge
    (gpu("Tesla T4", (7, 5), cores=2, processes=2), "adamw_torch_fused", 0, True),  # no spare core
    (CPU_BF16, "adamw_torch", 0, False),  # on a CPU the cores train
    (CPU_PLAIN, "adamw_torch", 0, False),
])
def test_optimizer_and_data_loading_per_device(machine, optim, workers, pinned):
    chosen = choose("auto", machine)
    args = chosen.training_arguments()
    assert (args["optim"], args["dataloader_num_workers"], args["dataloader_pin_memory"]) == (optim, workers, pinned)
    assert args["dataloader_persistent_workers"] is (workers > 0)
    assert chosen.attention == "sdpa"


def test_choices_are_valid_training_arguments_on_this_stack(tmp_path):
    """What the choices set for a GPU and for this CPU is accepted by the installed transformers' TrainingArguments."""
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    for machine in (A100, V100, CPU_BF16):
        assert set(choose("auto", machine).training_arguments()) <= fields
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", **choose("auto", CPU_BF16).training_arguments())
    assert args.bf16 and args.use_cpu and args.optim.value == "adamw_torch"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx512f avx512_bf16\n\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16\n")
    assert hardware.cpu_flags(str(x86)) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert Machine(cuda=False, cpu_flags=hardware.cpu_flags(str(arm))).cpu_bf16
    assert hardware.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_detect_describes_this_machine(monkeypatch):
    import os

    import torch

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")  # torchrun's count of processes on this node
    machine = hardware.detect()
    assert machine.cpu_count == len(os.sched_getaffinity(0)) and machine.local_processes == 3
    assert machine.cpu_flags == hardware.cpu_flags() and machine.cuda == torch.cuda.is_available()
    if machine.cuda:
        name = torch.cuda.get_device_name(torch.cuda.current_device())
        assert machine.gpu_name == name and machine.describe().startswith(f"{name} (compute capability ")
    else:
        bf16 = [f for f in hardware.CPU_BF16_FLAGS if f in machine.cpu_flags]
        assert machine.describe() == ("this CPU (bf16 instructions: " + ", ".join(bf16) + ")" if bf16 else
                                      "this CPU (no bf16 instructions)")
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert hardware.detect().local_processes == 1
