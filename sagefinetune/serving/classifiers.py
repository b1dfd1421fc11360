"""What the local server and local batch predictions load: the serving handler's PyTorch Classifier, or, for a folder
written by ``run.export("onnx")``, the same Classifier answering through ONNX Runtime.

Both answer through the handler's ``check``, ``format`` and ``predict_fn``, so an ONNX model returns the same JSON as the
PyTorch model it came from. The ONNX path imports neither torch nor transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagefinetune.entrypoint import inference as handler
from sagefinetune.entrypoint.serving_choice import Served, served
from sagefinetune.runtime.loading import ONNX_FILE, OnnxRuntime

__all__ = ["OnnxClassifier", "load_classifier", "is_onnx", "choice", "local_device"]


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
        self.padding_waste = runtime.padding_waste  # chunks of one length (see the handler's PADDING_WASTE)

    def probabilities(self, items: list[Any]) -> Any:
        return self.runtime.probabilities(items)

    def describe(self) -> str:
        return f"cpu, ONNX Runtime {self.precision}"


def local_device() -> str:
    """``"cuda"`` where this machine has an NVIDIA GPU (its driver's device file; torch is not imported for this,
    so that an ONNX server starts without it), else ``"cpu"``."""
    return "cuda" if Path("/dev/nvidiactl").exists() else "cpu"


def choice(model_dir: str | Path, runtime: str = "auto", precision: str = "auto") -> Served:
    """What :func:`load_classifier` serves the folder with, and why (see
    :func:`~sagefinetune.entrypoint.serving_choice.served`): an export as itself, else what ``serving.json`` chose."""
    if is_onnx(model_dir):
        return Served("onnx", "export", str(model_dir), "the ONNX export in the folder")
    return served(str(model_dir), local_device(), runtime, precision)


def load_classifier(model_dir: str | Path, threads: int | None = None, precision: str = "auto",
                    runtime: str = "auto") -> handler.Classifier:
    """The folder's model, ready to serve: ONNX Runtime for an ONNX export (its own precision) or where the folder's
    ``serving.json`` chose its int8 export (``runtime`` and ``precision`` override that), else the handler's PyTorch
    Classifier computing in ``precision`` (see :func:`~sagefinetune.entrypoint.inference.serving_precision`)."""
    chosen = choice(model_dir, runtime, precision)
    if chosen.runtime == "onnx":
        return OnnxClassifier(OnnxRuntime(chosen.folder, threads=threads))
    if threads:
        import torch

        torch.set_num_threads(threads)
    return handler.load(str(model_dir), precision, runtime, chosen)
