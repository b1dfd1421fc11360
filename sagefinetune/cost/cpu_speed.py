"""A built-in, rough estimate of this machine's CPU training speed, so that a local plan shows a time with nothing
asked of the user. A probe (:func:`sagefinetune.speed.measure_speed`) refines it; once one is cached for the same
settings, plans use that instead.

The rule: the Job's work in FLOPs (:mod:`sagefinetune.cost.throughput`: training FLOPs per padded token, a third of
that to evaluate) at a rate per CPU core, times the cores this process may use (split between local processes),
times a factor for the CPU's vector instructions. The rates per core and the fixed times (start-up, a checkpoint,
the final save) were measured by ``measure_speed`` on one machine: a 2-vCPU Intel Xeon with AMX and AVX-512 BF16,
all-MiniLM-L6-v2 on rotten_tomatoes, batch 32 (2.06 s a step: 28 GFLOP/s of training; 12.5 s to start).
Other CPUs are scaled by their instructions (AMX / AVX-512 BF16: 1, AVX-512: 0.6, AVX2: 0.35, else 0.2: by
their vector width and bf16 support, not measured), so the range is wide: :data:`ROUGH_RANGE`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from sagefinetune.cost.local_speed import LocalSpeed
from sagefinetune.cost.throughput import ModelSize
from sagefinetune.entrypoint.inference import cpu_flags

__all__ = ["CpuSpeed", "this_cpu", "rough_speed", "ROUGH_RANGE"]

ROUGH_RANGE = (0.5, 2.0)  # a built-in estimate: from half to twice the predicted time
TRAIN_GFLOPS_PER_CORE = 14.2  # measured: 28.3 GFLOP/s on 2 cores (see the module docstring)
EVAL_GFLOPS_PER_CORE = 217.0  # measured: 0.0030 s a row of about 60 padded tokens, forward only
STARTUP_S = 12.5  # imports, model load, tokenizing
SAVE_S_PER_MPARAM = 0.0063  # a checkpoint: 0.14 s for 22.7M parameters
FINAL_S = 1.0  # the model, tokenizer and reports
#: (flags any of which the CPU has, factor against the measured machine, name), best first.
ISA_FACTORS = ((("amx_bf16", "avx512_bf16"), 1.0, "AMX/AVX-512 BF16"), (("avx512f",), 0.6, "AVX-512"),
               (("avx2",), 0.35, "AVX2"), (("bf16", "asimd"), 0.35, "Arm NEON"))
OTHER_FACTOR = 0.2


@dataclass(frozen=True)
class CpuSpeed:
    """What the rough estimate knows about this CPU: cores this process may use and its vector instructions."""

    cores: int
    factor: float
    isa: str

    def describe(self) -> str:
        return f"{self.cores} core(s), {self.isa}"


@cache
def this_cpu() -> CpuSpeed:
    """The cores this process may use (its affinity) and the factor of its best vector instructions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cpu_speed(cores, cpu_flags())


def cpu_speed(cores: int, flags: frozenset[str]) -> CpuSpeed:
    """The factor of the best instructions in ``flags``.

    >>> cpu_speed(8, frozenset({"avx2", "fma"})).factor
    0.35
    """
    for names, factor, isa in ISA_FACTORS:
        if any(n in flags for n in names):
            return CpuSpeed(cores, factor, isa)
    return CpuSpeed(cores, OTHER_FACTOR, "no AVX2")


def rough_speed(model: ModelSize, hyperparameters: Mapping[str, int], train_tokens: float, eval_tokens: float,
                processes: int, cpu: CpuSpeed | None = None) -> LocalSpeed:
    """A :class:`LocalSpeed` from the rule, for ``batch_size`` x ``gradient_accumulation_steps`` rows a step of
    ``train_tokens`` padded tokens each (``eval_tokens`` when evaluating)."""
    cpu = cpu or this_cpu()
    cores = max(1.0, cpu.cores / processes)
    rows = hyperparameters["batch_size"] * hyperparameters["gradient_accumulation_steps"]
    step_flops = rows * train_tokens * model.train_flops_per_token(train_tokens)
    eval_flops = eval_tokens * model.train_flops_per_token(eval_tokens) / 3
    mparams = model.params / 1e6
    return LocalSpeed(
        key="", settings={}, startup_s=STARTUP_S, step_s=step_flops / (TRAIN_GFLOPS_PER_CORE * 1e9 * cores * cpu.factor),
        save_s=SAVE_S_PER_MPARAM * mparams, eval_row_s=eval_flops / (EVAL_GFLOPS_PER_CORE * 1e9 * cores * cpu.factor),
        final_s=FINAL_S, probe_steps=0, measured_at="",
    )
