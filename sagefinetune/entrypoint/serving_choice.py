"""Which runtime serves a model folder: ONNX Runtime with int8 weights, PyTorch in bf16, or PyTorch in fp32.

The check at deploy (:mod:`sagefinetune.runtime.serving_check`) scores the run's test split with each and records
what it chose in the model folder's ``serving.json``::

    {"runtime": "onnx", "precision": "int8", "onnx_dir": "onnx-int8", "metric": "accuracy",
     "accuracy": {"pytorch fp32": 0.9, "onnx int8": 0.8975, "pytorch bf16": 0.9}, "rows": 400, "limit": 0.01,
     "checked_at": "2026-12-06T10:30:00+00:00", "cpu": "AMD EPYC ...", "model_sha256": "...", "why": "..."}

:func:`decide` makes the choice from the accuracies: the int8 export when it scores within ``limit`` (one point) of
PyTorch fp32, else bf16 when it does, else fp32. :func:`served` applies it where a server loads the model: the local
server and the SageMaker handler (``model_fn``) both call it, so both serve the same thing. A GPU keeps PyTorch (the
int8 export is a CPU path), a folder without the record keeps PyTorch with ``precision="auto"`` (what was served
before the check existed), and ``runtime="pytorch"`` or an explicit precision override the record.

Shipped beside the handler as ``code/serving_choice.py``: the standard library only (onnxruntime, torch and
transformers are imported only by :class:`OnnxModel`, when the int8 export is served).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["decide", "served", "read_record", "Served", "OnnxModel", "onnx_session", "RECORD_FILE", "INT8_DIR",
           "MAX_DROP", "RUNTIMES"]

RECORD_FILE = "serving.json"
INT8_DIR = "onnx-int8"  # the int8 export, inside the model folder, so that it travels in model.tar.gz
MAX_DROP = 0.01  # one point of accuracy
RUNTIMES = ("auto", "pytorch", "onnx")
REFERENCE, INT8, BF16 = "pytorch fp32", "onnx int8", "pytorch bf16"
# ONNX Runtime's session-level fusions left off: its SkipLayerNormalization kernel (a residual Add and the LayerNorm
# after it) runs slower than the two ops it replaces (onnxruntime 1.32, MiniLM int8: benchmarks/onnx_fusion.py)
SLOW_FUSIONS = ["SkipLayerNormFusion"]


def decide(accuracy: dict[str, float | None], limit: float = MAX_DROP, metric: str = "accuracy") -> tuple[str, str, str]:
    """(runtime, precision, why) from the test-split scores of ``"pytorch fp32"``, ``"onnx int8"`` and ``"pytorch
    bf16"`` (None: not measured).

    >>> decide({"pytorch fp32": 0.90, "onnx int8": 0.895, "pytorch bf16": 0.90})[:2]
    ('onnx', 'int8')
    >>> decide({"pytorch fp32": 0.90, "onnx int8": 0.85, "pytorch bf16": 0.90})[:2]
    ('pytorch', 'bf16')
    >>> decide({"pytorch fp32": 0.90, "onnx int8": 0.85, "pytorch bf16": 0.85})[:2]
    ('pytorch', 'fp32')
    """
    ref, int8, bf16 = accuracy[REFERENCE], accuracy.get(INT8), accuracy.get(BF16)
    assert ref is not None
    points = 100 * limit
    within = f"within {points:g} point" + ("" if points == 1 else "s")
    if int8 is None:
        int8_note = f"no int8 export (install sagefinetune[onnx]); PyTorch fp32 {metric} {ref:.4f}"
    else:
        ok = ref - int8 <= limit + 1e-9
        int8_note = f"ONNX int8 {metric} {int8:.4f} vs PyTorch fp32 {ref:.4f}: {'' if ok else 'not '}{within}"
        if ok:
            return "onnx", "int8", int8_note
    if bf16 is not None and ref - bf16 <= limit + 1e-9:
        return "pytorch", "bf16", f"{int8_note}; PyTorch bf16 {bf16:.4f}: {within}"
    bf16_note = "this CPU has no native bf16" if bf16 is None else f"PyTorch bf16 {bf16:.4f}: not {within}"
    return "pytorch", "fp32", f"{int8_note}; {bf16_note}"


@dataclass(frozen=True)
class Served:
    """What :func:`served` chose: ``runtime`` ("onnx" or "pytorch"), ``precision`` ("int8"; or "auto", "bf16",
    "fp32" as PyTorch's request), ``folder`` (the folder to load) and ``why`` (one line, for logs and messages)."""

    runtime: str
    precision: str
    folder: str
    why: str


def read_record(model_dir: str) -> dict[str, Any] | None:
    """The folder's ``serving.json``, or None (none, or unreadable)."""
    try:
        with open(os.path.join(model_dir, RECORD_FILE), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("runtime") in ("onnx", "pytorch") else None


def served(model_dir: str, device: str = "cpu", runtime: str = "auto", precision: str = "auto") -> Served:
    """What to serve ``model_dir`` with on ``device``: the record's choice unless ``runtime``/``precision`` override it.

    ``runtime="pytorch"`` or ``precision="fp32"``/``"bf16"`` serve PyTorch in that precision; ``runtime="onnx"``
    serves the int8 export (ValueError when the folder has none); a GPU device serves PyTorch.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}. Fix: runtime='auto' (what "
                         "serving.json recorded), 'pytorch' or 'onnx' (the int8 export).")
    record = read_record(model_dir)
    onnx_dir = os.path.join(model_dir, (record or {}).get("onnx_dir") or INT8_DIR)
    has_int8 = os.path.isfile(os.path.join(onnx_dir, "model.onnx"))
    if runtime == "onnx":
        if not has_int8:
            raise ValueError(f"runtime='onnx' needs the int8 export in {onnx_dir}; there is none (the check at deploy "
                             "writes it when it scores within 1 point of PyTorch). Fix: runtime='auto', or "
                             "run.export('onnx', quantize='int8').deploy().")
        if device != "cpu":
            raise ValueError(f"runtime='onnx' runs on the CPU; this device is {device}. Fix: runtime='auto'.")
        return Served("onnx", "int8", onnx_dir, "ONNX Runtime int8 as asked (runtime='onnx')")
    if runtime == "pytorch" or precision != "auto":
        return Served("pytorch", precision, model_dir, f"PyTorch as asked (runtime={runtime!r}, precision={precision!r})")
    if device != "cpu":
        return Served("pytorch", "auto", model_dir, f"PyTorch on {device} (the int8 export is a CPU path)")
    if record is None:
        return Served("pytorch", "auto", model_dir, f"PyTorch, precision auto, as before: no {RECORD_FILE} (no test "
                      "split was checked)")
    note = f"{record.get('why', '')}; {record.get('rows', '?')} test rows, checked {record.get('checked_at', '?')}"
    if record["runtime"] == "onnx" and has_int8:
        return Served("onnx", "int8", onnx_dir, f"ONNX Runtime int8 ({note})")
    chosen = "fp32" if record.get("precision") == "fp32" else "auto"
    return Served("pytorch", chosen, model_dir, f"PyTorch {record.get('precision', 'auto')} ({note})")


def onnx_session(path: str, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``path`` as every sagefinetune runtime builds it: ``threads`` intra-op threads
    (default: every core this process may use), every graph optimization but :data:`SLOW_FUSIONS`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"], disabled_optimizers=SLOW_FUSIONS)


class OnnxModel:
    """The int8 export with the calling convention of a 🤗 model, for the handler's Classifier in the container:
    ``model.config`` (label names) and ``model(**tensors).logits`` (a torch tensor), run by ONNX Runtime on the CPU."""

    def __init__(self, folder: str, threads: int | None = None) -> None:
        from transformers import AutoConfig

        self.session = onnx_session(os.path.join(folder, "model.onnx"), threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = AutoConfig.from_pretrained(folder, local_files_only=True)

    def __call__(self, **tensors: Any) -> Any:
        import types

        import numpy as np
        import torch

        feed = {name: np.asarray(tensors[name].cpu().numpy(), dtype=np.int64) for name in self.input_names}
        return types.SimpleNamespace(logits=torch.from_numpy(self.session.run(None, feed)[0]))
