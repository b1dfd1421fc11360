"""The serving handler: the Hugging Face inference container's ``model_fn`` / ``input_fn`` / ``predict_fn`` /
``output_fn``, written into every model folder as ``code/inference.py``.

SageMaker's Hugging Face inference container (real-time, serverless and batch transform) and sagefinetune's local
endpoint both run this file, so every place answers the same request with the same JSON::

    POST /invocations   Content-Type: application/json
    {"inputs": "a text" | ["text", ...] | [["text", "text_pair"], ...], "parameters": {"top_k": 2}}

    -> [{"label": "sports", "score": 0.97}, ...]            one item per input, best label first

Other content types: ``application/jsonlines`` (one input per line: a text, ``{"inputs": ...}`` or
``{"text": ..., "text_pair": ...}``; batch transform sends these), ``text/csv`` (one input per row; two columns make a
sentence pair) and ``text/plain`` (the body is one text). ``Accept: application/jsonlines`` answers one JSON line per
input. Parameters: ``top_k`` (the k best labels, as a list) or ``all_scores`` (every label, best first); a
multi-label model answers the labels whose score clears the threshold chosen on the validation split. Defaults for
every request can be set with the ``SFT_PARAMETERS`` environment variable (JSON), e.g. for a batch transform.

Precision (``SFT_PRECISION``): ``auto`` (the default) runs the model in bf16 where the device computes bf16 natively
(Ampere and newer GPUs; CPUs with AVX512-BF16 or AMX; Arm CPUs with BF16), and in fp32 elsewhere; ``fp32`` always in
fp32; ``bf16`` where the device has it (else fp32, logged). The scores are computed in fp32 from the logits; bf16
moves them by a few thousandths at most and halves the model's memory.

The model and tokenizer load from the model folder only, never from the Hub. Inputs are cut to the training
``max_length`` as training cut them (``sagefinetune.json``; ``code/truncation.py``) and run in length-sorted
batches. A request the handler cannot answer raises :class:`RequestError`, whose ``status`` is the HTTP status to
answer with (the container answers 400 for every error, with the message).

Limits: JSON nests at most :data:`MAX_DEPTH` deep (checked before decoding); a request holds at most
``SFT_MAX_INPUTS`` inputs (see :func:`max_inputs`); a forward pass on a CPU pads at most ``SFT_BATCH_TOKENS`` tokens
(:data:`CPU_BATCH_TOKENS`), so long inputs run in smaller chunks and memory stays bounded.

Self-contained: the standard library, numpy, torch and transformers only (the container has nothing else), and
onnxruntime where ``serving.json`` chose the int8 export (``code/requirements.txt`` names it; the toolkit installs it
at model load). See :mod:`serving_choice` (``code/serving_choice.py``).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

if __package__:
    from . import request_body, serving_choice, truncation
else:  # code/inference.py in a model folder: the toolkit puts code/ (with the modules beside it) on sys.path
    import request_body  # type: ignore[no-redef]
    import serving_choice  # type: ignore[no-redef]
    import truncation  # type: ignore[no-redef]

# what the handler and its callers use of the request module, under the names they had here
RequestError = request_body.RequestError
CONTENT_TYPES, DEFAULT_MAX_INPUTS, MAX_DEPTH = request_body.CONTENT_TYPES, request_body.DEFAULT_MAX_INPUTS, request_body.MAX_DEPTH
JSON, JSONLINES, REQUEST_EXAMPLE = request_body.JSON, request_body.JSONLINES, request_body.REQUEST_EXAMPLE
read_request, max_inputs, json_depth = request_body.read_request, request_body.max_inputs, request_body.json_depth
check_parameters, default_parameters = request_body.check_parameters, request_body.default_parameters
media_type, show = request_body.media_type, request_body.show

__all__ = ["model_fn", "input_fn", "predict_fn", "output_fn", "load", "Classifier", "answer", "RequestError", "read_request",
           "max_inputs", "json_depth", "check_parameters", "default_parameters", "CONTENT_TYPES", "DEFAULT_MAX_INPUTS",
           "MAX_DEPTH", "PADDING_WASTE", "INT8_PASS", "pass_size"]

SETTINGS_FILE = "sagefinetune.json"
PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX512-BF16 / AMX; Arm (e.g. Graviton3) "bf16"
CPU_BATCH_TOKENS = 2048  # padded tokens per forward pass on a CPU: 32 inputs of 64 tokens, 4 of 512
#: How much padding a chunk may add to its real tokens (see :func:`chunks`). PyTorch runs a batch faster per input;
#: ONNX Runtime on a CPU runs a short text alone as fast per text as in a batch (benchmarks/onnx_fusion.py), so there
#: padding is pure loss and a chunk holds inputs of one length.
PADDING_WASTE = {"pytorch": 0.25, "onnx": 0.0}
#: Most inputs in one forward pass of an int8 model (the ONNX export): one. Dynamic int8 quantizes each pass's
#: activations with one scale for the whole pass, so an input's scores would depend on the inputs that share its pass
#: (of 200 reviews, 8 changed label between a pass of several and a pass alone; scores moved by up to 0.078). One
#: input per pass gives every input the same answer however it is sent, alone or in a batch, for 10 to 15% more time
#: on large batches (:func:`pass_size`).
INT8_PASS = 1


def pass_size(batch_size: int, precision: str) -> int:
    """Most inputs in one forward pass: ``batch_size``, or :data:`INT8_PASS` for an int8 model."""
    return INT8_PASS if precision == "int8" else batch_size


# ---- model_fn ----------------------------------------------------------------------------------------------------
class Classifier:
    """A loaded model with what serving needs: label names, problem type, threshold, max length, pairs."""

    def __init__(self, model: Any, tokenizer: Any, settings: dict[str, Any], device: str,
                 precision: str = "fp32") -> None:
        config = model.config
        self.model, self.tokenizer, self.device, self.precision = model, tokenizer, device, precision
        self.tokenizing = threading.Lock()  # the server's workers share the tokenizer (see probabilities)
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.multi_label = (settings.get("problem_type") or config.problem_type) == "multi_label_classification"
        self.threshold = float(settings.get("threshold", 0.5))
        model_max = getattr(tokenizer, "model_max_length", 512) or 512
        self.max_length = int(settings.get("max_length") or min(512, model_max))
        self.pairs = bool(settings.get("text_pair"))
        self.truncation = truncation.check(settings.get("truncation") or "head")
        self.batch_size = int(os.environ.get("SFT_BATCH_SIZE", "32"))
        self.batch_tokens = int(os.environ.get("SFT_BATCH_TOKENS") or (CPU_BATCH_TOKENS if device == "cpu" else 0))
        self.padding_waste = PADDING_WASTE["onnx" if precision == "int8" else "pytorch"]  # int8: the ONNX export

    def probabilities(self, items: list[Any]) -> Any:
        """Scores (softmax, or sigmoid for multi-label) of checked items, as a numpy array [inputs, labels].

        The items are tokenized together, then run longest first in chunks of similar length (see :func:`chunks`),
        each padded only to its own longest input, and (on a CPU) at most ``batch_tokens`` tokens padded.
        """
        import numpy as np
        import torch

        pairs = [i if isinstance(i, tuple) else (i, "") for i in items]
        with self.tokenizing:  # a fast tokenizer's truncation is state its calls set: one thread at a time
            firsts = [self.clip(a, b) for a, b in pairs]
            seconds = [self.clip(b, a) for a, b in pairs] if self.pairs else None
            encoded = truncation.encode(self.tokenizer, firsts, seconds, self.max_length, self.truncation)
        names = [n for n in self.tokenizer.model_input_names if n in encoded]
        lengths = [len(ids) for ids in encoded["input_ids"]]
        out = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            size = pass_size(self.batch_size, self.precision)
            for chunk in chunks(lengths, size, self.padding_waste, self.batch_tokens):
                logits = self.model(**self._pad(encoded, names, chunk)).logits.float()
                scores = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
                out[chunk] = scores.cpu().numpy()
        return out

    def clip(self, text: str, other: str = "") -> str:
        """``text`` cut before tokenizing, keeping the tokens ``truncation`` keeps (see :func:`truncation.clip`)."""
        return truncation.clip(self.tokenizer, text, self.max_length, self.truncation, other)

    def _pad(self, encoded: Any, names: list[str], chunk: list[int]) -> dict[str, Any]:
        """Tensors of one chunk, padded to its longest input on the tokenizer's padding side."""
        import torch

        width = max(len(encoded["input_ids"][i]) for i in chunk)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        tensors = {}
        for name in names:
            fill = (self.tokenizer.pad_token_id or 0) if name == "input_ids" else 0
            rows = [[fill] * (width - len(encoded[name][i])) for i in chunk]
            rows = [pad + encoded[name][i] if left else encoded[name][i] + pad for pad, i in zip(rows, chunk)]
            tensors[name] = torch.tensor(rows, dtype=torch.long, device=self.device)
        return tensors

    def check(self, items: list[Any]) -> None:
        """Every item fits the model: a text, or a (text, text_pair) pair for a model trained on pairs."""
        for i, item in enumerate(items):
            if self.pairs and not isinstance(item, tuple):
                raise RequestError(f"this model was trained on sentence pairs: each input is a [text, text_pair] "
                                   f"pair; input {i} is {show(item)}. Fix: "
                                   '{"inputs": [["first text", "second text"]]}.')
            if not self.pairs and isinstance(item, tuple):
                raise RequestError(f"this model takes one text per input; input {i} is a pair {show(list(item))}. "
                                   f"Fix: {REQUEST_EXAMPLE} (pairs need a model trained with a text_pair column).")

    def format(self, row: Any, parameters: dict[str, Any]) -> Any:
        """One input's answer from its scores: the best label, the top k, all of them, or (multi-label) those above
        the threshold."""
        return answer(self.labels, row, parameters, self.multi_label, self.threshold)

    def describe(self) -> str:
        """Where and how it computes, e.g. ``"cpu, bf16"`` or ``"cpu, ONNX Runtime int8"``."""
        return f"{self.device}, ONNX Runtime int8" if self.precision == "int8" else f"{self.device}, {self.precision}"


def model_fn(model_dir: str) -> Classifier:
    """Load model, tokenizer and serving settings from the model folder (never from the Hub): the runtime that the
    folder's ``serving.json`` chose on this device (``SFT_RUNTIME`` overrides it: ``auto``, ``pytorch``, ``onnx``),
    PyTorch computing in the precision ``SFT_PRECISION`` asks for (``auto`` when unset)."""
    return load(model_dir, os.environ.get("SFT_PRECISION") or "auto", os.environ.get("SFT_RUNTIME") or "auto")


def load(model_dir: str, precision: str = "auto", runtime: str = "auto", choice: Any = None) -> Classifier:
    """:func:`model_fn` with the precision and runtime given (see :func:`serving_precision` and
    :func:`serving_choice.served`): the int8 ONNX export on a CPU where ``serving.json`` chose it, else PyTorch
    (``choice``: a :class:`serving_choice.Served` made already, as the local server does)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    check_precision(precision)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    choice = choice or serving_choice.served(model_dir, device, runtime, precision)
    if choice.runtime == "onnx":
        try:
            model: Any = serving_choice.OnnxModel(choice.folder)
        except ImportError as exc:  # no onnxruntime (code/requirements.txt not installed): serve PyTorch
            if runtime == "onnx":
                raise
            print(f"[sagefinetune] cannot load the int8 export ({exc}); serving PyTorch", flush=True)
            return load(model_dir, precision, "pytorch")
        print(f"[sagefinetune] serving {choice.why}", flush=True)
        tokenizer = AutoTokenizer.from_pretrained(choice.folder, local_files_only=True)
        return Classifier(model, tokenizer, read_settings(choice.folder), "cpu", "int8")
    print(f"[sagefinetune] serving {choice.why}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    model.to(device).eval()
    return Classifier(model, tokenizer, read_settings(model_dir), device, to_precision(model, device, choice.precision))


def read_settings(folder: str) -> dict[str, Any]:
    """The folder's ``sagefinetune.json`` (max length, threshold, pairs, truncation), or {}."""
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return dict(json.load(fh))


# ---- precision ---------------------------------------------------------------------------------------------------
def check_precision(precision: Any) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}. Fix: precision='auto' "
                         "(bf16 where the device computes it natively, else fp32), or 'fp32' for fp32 everywhere.")
    return str(precision)


def serving_precision(requested: str, native: bool) -> tuple[str, str]:
    """(precision, why): ``auto`` and ``bf16`` are bf16 where the device computes it natively, else fp32.

    >>> serving_precision("auto", native=True)[0], serving_precision("bf16", native=False)[0]
    ('bf16', 'fp32')
    """
    check_precision(requested)
    if requested == "fp32":
        return "fp32", "precision=fp32 as asked"
    if native:
        return "bf16", f"precision={requested}: the device computes bf16 natively"
    return "fp32", f"precision={requested}: the device has no native bf16, so the model runs in fp32"


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU of compute capability 8.0 or newer, or a CPU with
    bf16 instructions (:data:`CPU_BF16_FLAGS` in :func:`cpu_flags`)."""
    if device.startswith("cuda"):
        import torch

        return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); empty where there is no /proc/cpuinfo."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def to_precision(model: Any, device: str, requested: str) -> str:
    """Put a loaded model (on ``device``) in the precision :func:`serving_precision` chooses; returns it."""
    import torch

    chosen, why = serving_precision(requested, native_bf16(device))
    if requested != "auto" and chosen != requested:
        print(f"[sagefinetune] {why}", flush=True)
    if chosen == "bf16":
        model.to(torch.bfloat16)
    return chosen


# ---- input_fn ----------------------------------------------------------------------------------------------------
def input_fn(input_data: bytes | str, content_type: str | None) -> dict[str, Any]:
    """Parse a request body into ``{"inputs": [text | (text, text_pair), ...], "parameters": {...}}``, with the
    input limit of :func:`max_inputs` (two parameters: the toolkit passes its context to a third)."""
    return read_request(input_data, content_type, max_inputs())


# ---- forward passes ----------------------------------------------------------------------------------------------
def chunks(lengths: list[int], batch_size: int, waste: float = 0.25, max_tokens: int = 0) -> list[list[int]]:
    """Indices of inputs in forward-pass chunks: longest first, at most ``batch_size`` each (and at most
    ``max_tokens`` tokens once padded, if set), and a new chunk where padding to the chunk's longest input would add
    more than ``waste`` of padding to its real tokens.

    >>> chunks([5, 30, 28, 6, 29], batch_size=4), chunks([5, 30, 28, 6, 29], batch_size=4, max_tokens=60)
    ([[1, 4, 2], [3, 0]], [[1, 4], [2], [3, 0]])
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        current = out[-1] if out else None
        if current and len(current) < batch_size and (not max_tokens or lengths[current[0]] * (len(current) + 1)
                                                      <= max_tokens):
            width, real = lengths[current[0]], sum(lengths[j] for j in current) + lengths[i]
            if width * (len(current) + 1) <= (1 + waste) * real:
                current.append(i)
                continue
        out.append([i])
    return out


# ---- predict_fn and output_fn ------------------------------------------------------------------------------------
def predict_fn(data: dict[str, Any], model: Classifier) -> list[Any]:
    """Predictions for parsed inputs, one per input (see :meth:`Classifier.format`)."""
    items, parameters = data["inputs"], data.get("parameters") or {}
    model.check(items)
    return [model.format(row, parameters) for row in model.probabilities(items)]


def answer(labels: list[str], row: Any, parameters: dict[str, Any], multi_label: bool = False,
           threshold: float = 0.5) -> Any:
    """One input's answer from its scores (``row``, one per label), as every place that predicts answers it: the best
    label ``{"label", "score"}``; with ``top_k`` the k best and with ``all_scores`` every label, best first (a list);
    for a multi-label model the labels whose score clears ``threshold`` (a list).

    >>> answer(["a", "b", "c"], [0.2, 0.7, 0.1], {}), answer(["a", "b", "c"], [0.2, 0.7, 0.1], {"top_k": 2})[1]
    ({'label': 'b', 'score': 0.7}, {'label': 'a', 'score': 0.2})
    """
    ranked = sorted(range(len(labels)), key=lambda j: -float(row[j]))
    scores: list[dict[str, Any]] = [{"label": labels[j], "score": float(row[j])} for j in ranked]
    if parameters.get("all_scores"):
        return scores
    if parameters.get("top_k") is not None:
        return scores[:int(parameters["top_k"])]
    if multi_label:
        return [s for s in scores if s["score"] >= threshold]
    return scores[0]


def output_fn(prediction: list[Any], accept: str | None) -> str:
    """JSON (default), or JSON Lines (one prediction per line) for ``Accept: application/jsonlines``."""
    if answer_type(accept) == JSON:
        return json.dumps(prediction, ensure_ascii=False)
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in prediction)


def answer_type(accept: str | None) -> str:
    """The media type to answer an ``Accept`` header with (its first type this handler writes)."""
    for option in (accept or "").split(","):
        media = media_type(option)
        if media in ("", "*/*", "application/*", JSON):
            return JSON
        if media in JSONLINES:
            return JSONLINES[0]
    raise RequestError(f"cannot answer in {accept!r}; this handler answers {JSON} or {JSONLINES[0]}. "
                       f"Fix: Accept: {JSON}.", status=406)
