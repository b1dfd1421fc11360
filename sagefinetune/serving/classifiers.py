"""What the local server and local batch predictions load: the serving handler's PyTorch Classifier, or, for a folder
written by ``run.export("onnx")``, the same Classifier answering through ONNX Runtime.

Both answer through the handler's ``check``, ``format`` and ``predict_fn``, so an ONNX model returns the same JSON as the
PyTorch model it came from. The ONNX path imports neither torch nor transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagefinetune.entrypoint import inference as handler
from sagefinetune.runtime.loading import ONNX_FILE, OnnxRuntime

__all__ = ["OnnxClassifier", "load_classifier", "is_onnx"]


def is_onnx(model_dir: str | Path) -> bool:
    """Whether the folder holds an ONNX export (``model.onnx``)."""
    return (Path(model_dir) / ONNX_FILE).is_file()


class OnnxClassifier(handler.Classifier):
    """The handler's Classifier over an :class:`~sagefinetune.runtime.loading.OnnxRuntime` (CPU)."""

    def __init__(self, runtime: OnnxRuntime) -> None:  # the handler's __init__ wants a PyTorch model: not called
        self.runtime = runtime
        self.model, self.tokenizer = None, runtime.tokenizer
        self.device, self.precision = "cpu", runtime.quantize or "fp32"
        self.labels, self.multi_label, self.threshold = runtime.labels, runtime.multi_label, runtime.threshold
        self.max_length, self.pairs, self.batch_size = runtime.max_length, runtime.pairs, runtime.batch_size

    def probabilities(self, items: list[Any]) -> Any:
        return self.runtime.probabilities(items)

    def describe(self) -> str:
        return f"cpu, ONNX Runtime {self.precision}"


def load_classifier(model_dir: str | Path, threads: int | None = None, precision: str = "auto") -> handler.Classifier:
    """The folder's model, ready to serve: ONNX Runtime for an ONNX export (its own precision), else the handler's
    PyTorch Classifier computing in ``precision`` (see :func:`~sagefinetune.entrypoint.inference.serving_precision`)."""
    if is_onnx(model_dir):
        return OnnxClassifier(OnnxRuntime(model_dir, threads=threads))
    if threads:
        import torch

        torch.set_num_threads(threads)
    return handler.load(str(model_dir), precision)
