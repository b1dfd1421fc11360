"""The time model behind :mod:`sagefinetune.cost.estimate`: work, GPU speed, data-parallel scaling. Pure: no I/O.

A fine-tune takes::

    seconds = overhead + steps x (compute per step + synchronisation per step) + evaluation

- **compute per step**: rows per device x padded tokens per row x training FLOPs per token (6 x the parameters of
  the transformer blocks, plus 12 x layers x tokens x hidden for attention), divided by the GPU's effective speed;
- **effective speed**: the speed fitted on the 25 V100 runs of the AWS SageMaker Hugging Face
  benchmark, carried to another GPU and precision by
  :func:`relative_speed` (published peak compute and memory bandwidth, mixed by a share fitted on NVIDIA's published
  BERT measurements);
- **synchronisation per step**: gradient bytes x a cost per doubling of the GPUs in a node and of the nodes, fitted
  on that benchmark, capped at half the step's compute per doubling (the all-reduce overlaps the backward pass), so that
  more GPUs never predict more time;
- **evaluation**: forward passes only, a third of a training step's FLOPs per row.

The fitted numbers live in ``cost/calibration.json`` (see :mod:`sagefinetune.cost.calibration`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["ModelSize", "GPUSpec", "GPUS", "model_size", "relative_speed", "padded_tokens_per_row", "Workload",
           "Hardware", "Calibration", "seconds", "optimizer_steps"]

SYNC_CAP = 0.5  # the exposed all-reduce costs at most half a step's compute per doubling (it overlaps the backward pass)
SEED_GPU, SEED_PRECISION = "V100", "fp32"


# ---- model sizes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSize:
    """An encoder's shape: layers, hidden size and vocabulary (what its FLOPs and gradient bytes follow from)."""

    layers: int
    hidden: int
    vocab: int
    source: str  # "known" | "name" | "assumed"

    @property
    def block_params(self) -> int:
        """Parameters of the transformer blocks: 4 h^2 attention + 8 h^2 feed-forward per layer."""
        return 12 * self.layers * self.hidden**2

    @property
    def params(self) -> int:
        """All parameters: word and position embeddings plus the blocks."""
        return (self.vocab + 512) * self.hidden + self.block_params

    def train_flops_per_token(self, tokens: float) -> float:
        """Forward and backward FLOPs per token at a padded length of ``tokens`` (Kaplan et al. 2020, bidirectional)."""
        return 6.0 * self.block_params + 12.0 * self.layers * tokens * self.hidden

    @property
    def gradient_gb(self) -> float:
        """Bytes all-reduced per step (fp32 gradients of every parameter), in GB."""
        return self.params * 4 / 1e9


#: (layers, hidden, vocabulary) of encoders people fine-tune, from their config.json on the Hub.
KNOWN_MODELS: Mapping[str, tuple[int, int, int]] = {
    "distilbert-base-uncased": (6, 768, 30522), "distilbert-base-cased": (6, 768, 28996),
    "distilbert-base-multilingual-cased": (6, 768, 119547), "distilroberta-base": (6, 768, 50265),
    "bert-base-uncased": (12, 768, 30522), "bert-base-cased": (12, 768, 28996),
    "bert-base-multilingual-cased": (12, 768, 119547), "bert-large-uncased": (24, 1024, 30522),
    "bert-large-cased": (24, 1024, 28996), "roberta-base": (12, 768, 50265), "roberta-large": (24, 1024, 50265),
    "xlm-roberta-base": (12, 768, 250002), "xlm-roberta-large": (24, 1024, 250002),
    "deberta-v3-xsmall": (12, 384, 128100), "deberta-v3-small": (6, 768, 128100), "deberta-v3-base": (12, 768, 128100),
    "deberta-v3-large": (24, 1024, 128100), "electra-small-discriminator": (12, 256, 30522),
    "electra-base-discriminator": (12, 768, 30522), "modernbert-base": (22, 768, 50368),
    "modernbert-large": (28, 1024, 50368), "all-minilm-l6-v2": (6, 384, 30522), "all-minilm-l12-v2": (12, 384, 30522),
    "all-mpnet-base-v2": (12, 768, 30527), "paraphrase-multilingual-minilm-l12-v2": (12, 384, 250037),
    "bert-tiny": (2, 128, 30522), "bert-mini": (4, 256, 30522), "bert-small": (4, 512, 30522),
    "bert-medium": (8, 512, 30522),
}
_BY_NAME = (("large", (24, 1024)), ("base", (12, 768)), ("small", (6, 512)), ("mini", (6, 384)), ("tiny", (2, 128)))


def model_size(model_id: str, config: Mapping[str, Any] | None = None) -> ModelSize:
    """The shape of ``model_id``: from the table, from its name (``L-4_H-256``, ``large``, ``base``), else BERT-base.

    ``num_hidden_layers`` / ``n_layers`` and ``hidden_size`` / ``dim`` in ``config`` (the Job's model overrides) win.

    Example:
        >>> model_size("sentence-transformers/all-MiniLM-L6-v2", {"num_hidden_layers": 2}).layers
        2
    """
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    if name in KNOWN_MODELS:
        (layers, hidden, vocab), source = KNOWN_MODELS[name], "known"
    elif m := re.search(r"l-?(\d+)[_-]h-?(\d+)", name):
        (layers, hidden, vocab), source = (int(m[1]), int(m[2]), 30522), "name"
    else:
        found = next((shape for word, shape in _BY_NAME if word in name), None)
        (layers, hidden), source = (found, "name") if found else ((12, 768), "assumed")
        vocab = 30522
    config = config or {}
    layers = int(config.get("num_hidden_layers", config.get("n_layers", layers)))
    hidden = int(config.get("hidden_size", config.get("dim", hidden)))
    return ModelSize(layers, hidden, vocab, source)


# ---- GPUs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GPUSpec:
    """Published peak speeds of one GPU: TFLOP/s in fp32, tf32 and fp16/bf16 tensor cores (dense), memory GB/s."""

    name: str
    fp32: float
    tf32: float
    tensor16: float
    memory_gbps: float
    source: str

    def peak(self, precision: str) -> float:
        return {"fp32": self.fp32, "tf32": self.tf32 or self.fp32}.get(precision, self.tensor16)


GPUS: Mapping[str, GPUSpec] = {
    "V100": GPUSpec("V100", 15.7, 0.0, 125.0, 900.0, "NVIDIA Tesla V100 datasheet (SXM2)"),
    "T4": GPUSpec("T4", 8.1, 0.0, 65.0, 320.0, "NVIDIA T4 datasheet"),
    "A10G": GPUSpec("A10G", 35.0, 35.0, 70.0, 600.0, "AWS A10G: 600 GB/s as the A10; tensor 70 TFLOPS "
                    "(Baseten, 'NVIDIA A10 vs A10G for ML model inference')"),
    "L4": GPUSpec("L4", 30.3, 60.0, 121.0, 300.0, "NVIDIA L4 datasheet (dense: half the sparse figure)"),
    "A100": GPUSpec("A100", 19.5, 156.0, 312.0, 1555.0, "NVIDIA A100 datasheet (SXM4 40GB)"),
    "A100-80GB": GPUSpec("A100-80GB", 19.5, 156.0, 312.0, 2039.0, "NVIDIA A100 datasheet (SXM4 80GB)"),
    "H100": GPUSpec("H100", 67.0, 494.5, 989.5, 3350.0, "NVIDIA H100 datasheet (SXM5, dense)"),
}


def relative_speed(gpu: str, precision: str, memory_share: float) -> float:
    """Training speed of ``gpu`` at ``precision`` relative to a V100 in fp32 (as the AWS SageMaker Hugging Face benchmark ran).

    A step spends ``1 - memory_share`` of its V100-fp32 time on arithmetic (which scales with peak FLOP/s) and
    ``memory_share`` on memory traffic (which scales with bandwidth).

    Example:
        >>> round(relative_speed("V100", "fp32", 0.2), 6)
        1.0
    """
    base, spec = GPUS[SEED_GPU], GPUS[gpu]
    time = (1 - memory_share) * base.peak(SEED_PRECISION) / spec.peak(precision) + memory_share * base.memory_gbps / spec.memory_gbps
    return 1.0 / time


# ---- tokens ------------------------------------------------------------------------------------------
def _spread(lengths: Sequence[float], n: int) -> list[float]:
    """``n`` evenly spaced quantiles of ``lengths`` (linear interpolation), sorted ascending."""
    values = sorted(float(v) for v in lengths)
    if len(values) == 1:
        return values * n
    out = []
    for i in range(n):
        pos = (i + 0.5) / n * (len(values) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        out.append(values[lo] + (values[hi] - values[lo]) * (pos - lo))
    return out


def padded_tokens_per_row(lengths: Sequence[float] | None, max_length: int, batch: int, *, pad_to_max: bool,
                          group_by_length: bool) -> float:
    """Tokens a row costs once its batch is padded: ``max_length`` for static padding (or unknown lengths).

    Dynamic padding pads each batch to its longest row: with ``group_by_length`` batches hold rows of similar length
    (sorted within groups of 50 batches, as the Trainer does); otherwise the batch's longest of ``batch`` random rows.

    Example:
        >>> padded_tokens_per_row([20, 30, 40], 512, 8, pad_to_max=True, group_by_length=True)
        512.0
        >>> round(padded_tokens_per_row([20, 30, 40], 512, 8, pad_to_max=False, group_by_length=True))
        30
        >>> round(padded_tokens_per_row([20, 30, 40], 512, 8, pad_to_max=False, group_by_length=False))
        38
    """
    if pad_to_max or not lengths:
        return float(max_length)
    return _dynamic_tokens(tuple(float(v) for v in lengths), max_length, batch, group_by_length)


@lru_cache(maxsize=256)
def _dynamic_tokens(lengths: tuple[float, ...], max_length: int, batch: int, group_by_length: bool) -> float:
    """Dynamic padding's tokens a row, remembered: a search over setups asks the same question for every setup."""
    n = max(50 * batch, 200)
    sample = [min(v, max_length) for v in _spread(lengths, n)]
    if group_by_length:
        chunks = [sample[i:i + batch] for i in range(0, n, batch)]
        return sum(max(c) * len(c) for c in chunks) / n
    expected, below = 0.0, 0.0
    for j, value in enumerate(sample, start=1):  # E[max of `batch` draws] from the empirical distribution
        cdf = (j / n) ** batch
        expected += value * (cdf - below)
        below = cdf
    return expected


# ---- the model -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """What one training run processes."""

    train_rows: int
    epochs: float
    batch_size: int  # per device
    tokens_per_row: float  # padded
    max_steps: int = 0
    grad_accum: int = 1
    eval_rows: int = 0  # rows passed forward in evaluation, all passes together
    eval_tokens_per_row: float = 0.0


@dataclass(frozen=True)
class Hardware:
    gpu: str
    precision: str
    gpus_per_node: int
    nodes: int = 1

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass(frozen=True)
class Calibration:
    """The fitted numbers (see :mod:`sagefinetune.cost.calibration`)."""

    overhead_s: float  # start-up, image and model download, model upload
    seed_tflops: float  # effective TFLOP/s of one V100 in fp32, as the benchmark's jobs ran
    sync_node_s_per_gb: float  # per doubling of the GPUs in a node
    sync_nodes_s_per_gb: float  # per doubling of the nodes
    memory_share: float  # see relative_speed

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(**{k: float(data[k]) for k in cls.__dataclass_fields__})


def optimizer_steps(work: Workload, world: int) -> int:
    """Optimizer steps as the Trainer counts them: ``max_steps``, else epochs x ceil(rows / global batch)."""
    if work.max_steps:
        return work.max_steps
    per_epoch = max(1, math.ceil(work.train_rows / (work.batch_size * work.grad_accum * world)))
    return max(1, math.ceil(per_epoch * work.epochs))


def seconds(work: Workload, hw: Hardware, model: ModelSize, cal: Calibration) -> float:
    """Predicted training seconds (SageMaker's TrainingTimeInSeconds) of ``work`` on ``hw``."""
    speed = cal.seed_tflops * 1e12 * relative_speed(hw.gpu, hw.precision, cal.memory_share)
    steps = optimizer_steps(work, hw.gpus)
    rows = steps * work.batch_size * work.grad_accum * hw.gpus if work.max_steps else work.train_rows * work.epochs
    compute = rows * work.tokens_per_row * model.train_flops_per_token(work.tokens_per_row) / speed / hw.gpus
    per_step = compute / steps  # one device's compute in one optimizer step
    sync = steps * (min(cal.sync_node_s_per_gb * model.gradient_gb, SYNC_CAP * per_step) * math.log2(hw.gpus_per_node)
                    + min(cal.sync_nodes_s_per_gb * model.gradient_gb, SYNC_CAP * per_step) * math.log2(hw.nodes))
    evaluation = (work.eval_rows * work.eval_tokens_per_row * model.train_flops_per_token(work.eval_tokens_per_row)
                  / 3 / speed / hw.gpus)
    return cal.overhead_s + compute + sync + evaluation
