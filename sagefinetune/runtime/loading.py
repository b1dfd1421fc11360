"""What runs a model folder's forward pass: PyTorch, or ONNX Runtime for a folder that holds ``model.onnx``.

Both runtimes share one interface, so :class:`~sagefinetune.Predictor`, the export's accuracy check and a server
answer the same inputs with the same scores whatever runs underneath::

    runtime = load_runtime(model_dir)          # OnnxRuntime when model_dir/model.onnx exists, else TorchRuntime
    runtime.labels, runtime.multi_label, runtime.threshold, runtime.max_length, runtime.pairs, runtime.batch_size
    runtime.probabilities(["a text", ...])     # numpy float32 [inputs, labels]: softmax (sigmoid for multi-label)

An input is a text, or a ``(text, text_pair)`` tuple for a model trained on pairs. Inputs run longest first in
batches of ``batch_size``, so each batch pads to texts of similar length, and are cut to the training ``max_length``
the way training cut them (``head`` or ``head+tail``, both from ``sagefinetune.json``; see
:mod:`sagefinetune.entrypoint.truncation`). The tokenizer is the model folder's own (never the Hub's). The ONNX
runtime imports neither torch nor transformers (its tokenizer is the folder's ``tokenizer.json``, through the
tokenizers library), so an ONNX server starts in a fraction of the time and memory.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagefinetune.core.deps import require
from sagefinetune.entrypoint import inference as handler
from sagefinetune.entrypoint import serving_choice as handler_choice
from sagefinetune.entrypoint import truncation
from sagefinetune.entrypoint.contract import SETTINGS_FILE
from sagefinetune.errors import ConfigError

__all__ = ["Runtime", "TorchRuntime", "OnnxRuntime", "load_runtime", "quiet_loading", "ONNX_FILE"]

ONNX_FILE = "model.onnx"
Item = str | tuple[str, str]


class Runtime:
    """The shared part: settings from the folder, tokenisation, length-sorted batches, scores.

    Subclasses load a tokenizer and implement :meth:`logits` on one tokenised batch (numpy arrays in, numpy logits
    out).
    """

    name = "runtime"
    padding_waste = handler.PADDING_WASTE["pytorch"]  # how much padding a chunk may add (see handler.chunks)
    pass_precision = "fp32"  # "int8": one input per forward pass (see handler.pass_size)

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32) -> None:
        self.model_dir = Path(model_dir)
        self.settings: dict[str, Any] = _read_json(self.model_dir / SETTINGS_FILE)
        config = _read_json(self.model_dir / "config.json")
        id2label = config.get("id2label") or {str(i): f"LABEL_{i}" for i in range(config.get("num_labels", 2))}
        self.labels: list[str] = [str(id2label[str(i)]) for i in range(len(id2label))]
        problem = self.settings.get("problem_type") or config.get("problem_type")
        self.multi_label = problem == "multi_label_classification"
        self.threshold = float(self.settings.get("threshold", 0.5))
        self.tokenizer = self.load_tokenizer()
        model_max = getattr(self.tokenizer, "model_max_length", 512) or 512
        self.max_length = int(self.settings.get("max_length") or min(512, model_max))
        self.pairs = bool(self.settings.get("text_pair"))
        try:
            self.truncation = truncation.check(self.settings.get("truncation") or "head")
        except ValueError as exc:
            raise ConfigError(f"{self.model_dir / SETTINGS_FILE}: {exc} (a model from a newer sagefinetune?). "
                              "Fix: upgrade sagefinetune.") from None
        self.batch_size = batch_size
        self.tokenizing = threading.Lock()
        # padded tokens per forward pass (SFT_BATCH_TOKENS; on a GPU the PyTorch runtime sets no limit)
        self.batch_tokens = int(os.environ.get("SFT_BATCH_TOKENS") or handler.CPU_BATCH_TOKENS)

    def load_tokenizer(self) -> Any:
        """The folder's tokenizer (🤗 transformers' AutoTokenizer)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)

    def logits(self, encoded: dict[str, Any]) -> Any:
        """Logits (numpy, [batch, labels]) for one tokenised batch."""
        raise NotImplementedError

    def tokens(self, items: Sequence[Item]) -> dict[str, list[Any]]:
        """Token lists of ``items``, unpadded, each text cut to ``max_length`` by the run's truncation (a long text
        is clipped first, as the handler clips it: see :func:`~sagefinetune.entrypoint.truncation.clip`)."""
        pairs = [i if isinstance(i, tuple) else (i, "") for i in items]
        with self.tokenizing:  # a tokenizer's truncation is state its calls set: one thread at a time (the server)
            firsts = [truncation.clip(self.tokenizer, a, self.max_length, self.truncation, b) for a, b in pairs]
            seconds = ([truncation.clip(self.tokenizer, b, self.max_length, self.truncation, a) for a, b in pairs]
                       if self.pairs else None)
            if self.truncation == "head":
                return dict(self.tokenizer(firsts, seconds, truncation=True, max_length=self.max_length,
                                           padding=False, return_tensors=None))
            return truncation.encode(self.tokenizer, firsts, seconds, self.max_length, self.truncation)

    def encode(self, items: Sequence[Item]) -> dict[str, Any]:
        """Tokenise one batch: numpy arrays, padded to the batch's longest input."""
        return self.pad(self.tokens(items))

    def pad(self, encoded: dict[str, list[Any]]) -> dict[str, Any]:
        """Token lists as numpy arrays padded to the longest, on the tokenizer's padding side."""
        return _pad(encoded, getattr(self.tokenizer, "pad_token_id", None) or 0,
                    left=getattr(self.tokenizer, "padding_side", "right") == "left")

    def probabilities(self, items: Sequence[Item], progress: Callable[[int], Any] | None = None) -> Any:
        """Scores of ``items`` as a numpy float32 array [inputs, labels], in the order given: tokenized together,
        then run longest first in chunks of similar length, at most ``batch_size`` inputs and (on a CPU)
        ``batch_tokens`` padded tokens each (the handler's :func:`~sagefinetune.entrypoint.inference.chunks`).
        ``progress`` is called with the number of inputs of each chunk once it ran (e.g. a tqdm bar's ``update``).

        Example:
            >>> load_runtime(run.model_dir).probabilities(["a fine film"]).round(2)  # doctest: +SKIP
            array([[0.04, 0.96]], dtype=float32)
        """
        import numpy as np

        encoded = self.tokens(items)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        logits = np.zeros((len(items), len(self.labels)), dtype=np.float64)
        size = handler.pass_size(self.batch_size, self.pass_precision)
        for chunk in handler.chunks(lengths, size, self.padding_waste, self.batch_tokens):
            batch = self.pad({name: [rows[i] for i in chunk] for name, rows in encoded.items()})
            logits[chunk] = self.logits(batch)
            if progress is not None:
                progress(len(chunk))
        # scored once for all chunks: numpy costs about 30 µs a call on a few rows, and ONNX chunks are often one text
        return (_sigmoid(logits) if self.multi_label else _softmax(logits)).astype(np.float32)


class TorchRuntime(Runtime):
    """The model folder's PyTorch weights (``model.safetensors``), in eval mode, on ``device`` (CPU by default)."""

    name = "pytorch"

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32, device: str | int | None = None,
                 threads: int | None = None, precision: str = "auto") -> None:
        super().__init__(model_dir, batch_size=batch_size)
        import torch
        from transformers import AutoModelForSequenceClassification

        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(_torch_device(device))
        with quiet_loading():
            self.model = AutoModelForSequenceClassification.from_pretrained(self.model_dir, local_files_only=True)
        self.model.to(self.device).eval()
        if self.device.type != "cpu" and not os.environ.get("SFT_BATCH_TOKENS"):
            self.batch_tokens = 0  # a GPU's memory holds batch_size inputs of max_length
        self.precision = handler.to_precision(self.model, str(self.device), precision)

    def logits(self, encoded: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            batch = {k: torch.from_numpy(v).to(self.device) for k, v in encoded.items()}
            return self.model(**batch).logits.float().cpu().numpy()


class OnnxRuntime(Runtime):
    """``model.onnx`` in an ONNX Runtime CPU session (fp32, or int8 weights from ``export(quantize="int8")``)."""

    name = "onnx"
    padding_waste = handler.PADDING_WASTE["onnx"]

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32, threads: int | None = None) -> None:
        require("onnxruntime", "run ONNX models")
        super().__init__(model_dir, batch_size=batch_size)
        self.session = handler_choice.onnx_session(str(self.model_dir / ONNX_FILE), threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.quantize = self.settings.get("onnx", {}).get("quantize")
        self.pass_precision = self.quantize or "fp32"  # int8: one input per pass, whatever else is asked with it

    def load_tokenizer(self) -> Any:
        """The folder's ``tokenizer.json`` through the tokenizers library alone (no transformers, so no torch);
        folders without one (slow tokenizers) load through transformers."""
        path = self.model_dir / "tokenizer.json"
        return FastTokenizer(self.model_dir) if path.is_file() else super().load_tokenizer()

    def logits(self, encoded: dict[str, Any]) -> Any:
        import numpy as np

        feed = {name: np.asarray(encoded[name], dtype=np.int64) for name in self.input_names}
        return self.session.run(None, feed)[0]


class FastTokenizer:
    """A ``tokenizer.json`` with the calling convention runtimes use: ``(texts, pairs, truncation=True,
    max_length=n, padding=True, return_tensors="np")`` -> input_ids, attention_mask, token_type_ids.

    The same tokenizer transformers' fast tokenizers wrap: the same normaliser, special tokens, pair template and
    longest-first truncation.
    """

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        config = _read_json(model_dir / "tokenizer_config.json")
        self.model_max_length = int(config.get("model_max_length") or 512)
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token = pad or "[PAD]"
        self.pad_id = self.tokenizer.token_to_id(self.pad_token) or 0

    @property
    def pad_token_id(self) -> int:
        return int(self.pad_id)

    def __call__(self, firsts: list[str], seconds: list[str] | None = None, *, truncation: bool = True,
                 max_length: int = 512, padding: bool = True, return_tensors: str | None = "np",
                 return_special_tokens_mask: bool = False, verbose: bool = True) -> dict[str, Any]:
        """Padded numpy arrays (the runtime's head truncation), or with ``truncation=False, padding=False,
        return_tensors=None`` the untruncated lists with their ``special_tokens_mask`` (for head+tail)."""
        import numpy as np

        tok = self.tokenizer
        if truncation:
            tok.enable_truncation(max_length, strategy="longest_first")
        else:
            tok.no_truncation()
        if padding:
            tok.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token)
        else:
            tok.no_padding()
        inputs: list[Any] = list(zip(firsts, seconds)) if seconds is not None else list(firsts)
        encodings = tok.encode_batch(inputs)
        out: dict[str, Any] = {"input_ids": [e.ids for e in encodings],
                               "attention_mask": [e.attention_mask for e in encodings],
                               "token_type_ids": [e.type_ids for e in encodings]}
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_tensors == "np":
            out = {k: np.array(v, dtype=np.int64) for k, v in out.items()}
        return out


def load_runtime(model_dir: str | Path, *, batch_size: int = 32, device: str | int | None = None,
                 threads: int | None = None, precision: str = "auto") -> Runtime:
    """The runtime for a model folder: ONNX Runtime when it holds ``model.onnx``, else PyTorch.

    Args:
        device: PyTorch only: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a GPU index (default: CPU).
        threads: CPU threads for the forward pass (default: PyTorch's own choice; ONNX: one per core).
        precision: PyTorch only: ``"auto"`` (bf16 where the device computes bf16 natively, else fp32),
            ``"fp32"`` or ``"bf16"``; an ONNX model computes as it was exported.
    """
    folder = Path(model_dir)
    if (folder / ONNX_FILE).is_file():
        if device not in (None, "cpu", -1):
            raise ConfigError(f"{folder} holds an ONNX model, which runs on the CPU here; got device={device!r}. "
                              "Fix: drop device=, or serve the PyTorch model folder (run.model_dir) on a GPU.")
        return OnnxRuntime(folder, batch_size=batch_size, threads=threads)
    require("transformers", "load a model")
    return TorchRuntime(folder, batch_size=batch_size, device=device, threads=threads, precision=precision)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' and huggingface_hub's progress bars off (transformers 5 draws "Loading weights" for every
    model it loads, which is a blink from a local folder), and back as they were afterwards; warnings still show."""
    import huggingface_hub.utils as hub
    from transformers.utils import logging as hf_logging

    bars, hub_bars_off = hf_logging.is_progress_bar_enabled(), hub.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if hub_bars_off != hub.are_progress_bars_disabled():
            (hub.disable_progress_bars if hub_bars_off else hub.enable_progress_bars)()


def _pad(encoded: dict[str, list[Any]], pad_id: int, left: bool = False) -> dict[str, Any]:
    """Rows of token lists as numpy arrays, padded to the longest (ids with ``pad_id``, the rest with 0)."""
    import numpy as np

    width = max(len(row) for row in encoded["input_ids"])
    out = {}
    for name, rows in encoded.items():
        fill = pad_id if name == "input_ids" else 0
        padded = [[fill] * (width - len(row)) + list(row) if left else list(row) + [fill] * (width - len(row))
                  for row in rows]
        out[name] = np.array(padded, dtype=np.int64)
    return out


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _torch_device(device: str | int | None) -> str:
    if device is None or device == -1:
        return "cpu"
    if isinstance(device, int):
        return f"cuda:{device}"
    return device


def _softmax(x: Any) -> Any:
    import numpy as np

    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x: Any) -> Any:
    import numpy as np

    return 1 / (1 + np.exp(-x))
