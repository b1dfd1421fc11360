"""What the hardware allows, and what the entry point makes of it: precision, TF32, the optimizer, attention, data loading.

Every choice is a pure function of a :class:`Machine` (what :func:`detect` finds), unit-tested per GPU kind without a
GPU: V100 and T4 (fp16), A10G, L4, A100 and H100 (bf16 and TF32), and CPUs with and without bf16 instructions.

- precision: ``auto`` is bf16 where the device computes it natively (Ampere and newer GPUs; CPUs with AVX512-BF16 or
  AMX, and Arm CPUs with BF16), fp16 on older GPUs, fp32 elsewhere. An explicit choice the device lacks falls back, and
  the log says so.
- TF32 matmuls on Ampere and newer: fp32 work (the optimizer, the loss) at tensor-core speed.
- the fused AdamW (one kernel for all parameters) on CUDA.
- SDPA attention (PyTorch's fused scaled_dot_product_attention) where the model class supports it.
- ``torch_compile=True`` (a hyperparameter, off by default) compiles the model; worth it on GPUs for long runs.
- data loading on GPUs: worker processes (up to 4 per GPU, within the CPU cores) and pinned memory; on a CPU the
  cores train, so the main process loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

try:
    from .inference import CPU_BF16_FLAGS, cpu_flags  # the serving handler decides bf16 by the same flags
except ImportError:  # run as a script inside the training container
    from inference import CPU_BF16_FLAGS, cpu_flags  # type: ignore[no-redef]


@dataclass(frozen=True)
class Machine:
    """What the process runs on.

    Attributes:
        cuda: a CUDA GPU is visible.
        capability: the GPU's compute capability, e.g. (8, 0) for an A100; None on CPU.
        gpu_name: e.g. ``"NVIDIA A10G"``; "" on CPU.
        cpu_flags: the CPU's feature flags (``/proc/cpuinfo``).
        cpu_count: CPU cores this process may use.
        local_processes: training processes on this machine (one per GPU under torchrun).
    """

    cuda: bool
    capability: tuple[int, int] | None = None
    gpu_name: str = ""
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cpu_count: int = 1
    local_processes: int = 1

    @property
    def gpu_bf16(self) -> bool:
        return self.cuda and self.capability is not None and self.capability >= (8, 0)

    @property
    def cpu_bf16(self) -> bool:
        return any(flag in self.cpu_flags for flag in CPU_BF16_FLAGS)

    def describe(self) -> str:
        if self.cuda:
            major, minor = self.capability or (0, 0)
            return f"{self.gpu_name or 'a CUDA GPU'} (compute capability {major}.{minor})"
        return "this CPU" + (" (bf16 instructions: " + ", ".join(f for f in CPU_BF16_FLAGS if f in self.cpu_flags)
                             + ")" if self.cpu_bf16 else " (no bf16 instructions)")


@dataclass(frozen=True)
class Choices:
    """What the entry point does on a machine; ``why`` holds one line per choice for the log."""

    cuda: bool
    precision: str
    tf32: bool
    optim: str
    attention: str
    dataloader_workers: int
    pin_memory: bool
    why: tuple[str, ...] = ()

    def training_arguments(self) -> dict[str, Any]:
        """The TrainingArguments these choices set (the same names in transformers 4.56 and 5.x)."""
        workers = {"dataloader_num_workers": self.dataloader_workers,
                   "dataloader_persistent_workers": self.dataloader_workers > 0}
        return {"bf16": self.precision == "bf16", "fp16": self.precision == "fp16", "optim": self.optim,
                "use_cpu": not self.cuda, "dataloader_pin_memory": self.pin_memory, **workers}


def choose_precision(preference: str, machine: Machine) -> tuple[str, str]:
    """(precision, why). ``auto``: bf16 where native, else fp16 on a GPU, else fp32."""
    where = machine.describe()
    if preference == "auto":
        if machine.cuda:
            return ("bf16", f"auto: {where} computes bf16") if machine.gpu_bf16 else \
                   ("fp16", f"auto: {where} has no bf16; fp16 with loss scaling")
        return ("bf16", f"auto: {where} computes bf16 natively") if machine.cpu_bf16 else \
               ("fp32", f"auto: {where} has no bf16 instructions")
    if preference == "fp16" and not machine.cuda:
        return "fp32", "precision=fp16 needs a GPU; none is visible, so training runs in fp32"
    if preference == "bf16" and machine.cuda and not machine.gpu_bf16:
        return "fp16", f"precision=bf16 is not supported by {where}; using fp16"
    if preference == "bf16" and not machine.cuda and not machine.cpu_bf16:
        return "fp32", f"precision=bf16 is not supported by {where}; training runs in fp32"
    return preference, f"precision={preference} as asked"


def use_tf32(machine: Machine) -> bool:
    """TF32 matmuls on Ampere (8.0) and newer."""
    return machine.gpu_bf16


def optimizer(machine: Machine) -> str:
    """The fused AdamW on CUDA; the plain one elsewhere."""
    return "adamw_torch_fused" if machine.cuda else "adamw_torch"


def attention(machine: Machine) -> str:
    """``"sdpa"`` on every device: PyTorch's fused attention (flash or memory-efficient kernels on GPUs). A model
    class without SDPA support keeps its own attention (see ``training.load_model``)."""
    return "sdpa"


def dataloader_workers(machine: Machine) -> int:
    """Worker processes per training process: on GPUs up to 4, leaving a core per process; 0 on a CPU."""
    if not machine.cuda:
        return 0
    spare = machine.cpu_count // max(1, machine.local_processes) - 1
    return max(0, min(4, spare))


def choose(preference: str, machine: Machine) -> Choices:
    """Every choice for this machine, with the reasons."""
    precision, why = choose_precision(preference, machine)
    workers = dataloader_workers(machine)
    reasons = [f"precision {precision} ({why})"]
    if use_tf32(machine):
        reasons.append("TF32 matmuls (Ampere or newer)")
    if machine.cuda:
        reasons.append(f"fused AdamW; {workers} data loader worker(s) per process with pinned memory")
    return Choices(cuda=machine.cuda, precision=precision, tf32=use_tf32(machine), optim=optimizer(machine),
                   attention=attention(machine), dataloader_workers=workers, pin_memory=machine.cuda,
                   why=tuple(reasons))


# ---- detection (not pure) -----------------------------------------------------------------------------------------
def detect() -> Machine:
    """The machine this process runs on (imports torch)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        capability = tuple(torch.cuda.get_device_capability(index))
        return Machine(cuda=True, capability=(capability[0], capability[1]), gpu_name=torch.cuda.get_device_name(index),
                       cpu_flags=cpu_flags(), cpu_count=cores, local_processes=local)
    return Machine(cuda=False, cpu_flags=cpu_flags(), cpu_count=cores, local_processes=local)


def apply_tf32(choices: Choices) -> None:
    """Switch TF32 matmuls and convolutions on, in torch itself (the same on transformers 4.56 and 5.x)."""
    if choices.tf32:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
