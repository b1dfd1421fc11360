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

The model and tokenizer load from the model folder only, never from the Hub. Inputs are truncated to the training
``max_length`` (from ``sagefinetune.json``) and run in length-sorted batches. A request the handler cannot answer
raises :class:`RequestError`, whose ``status`` is the HTTP status to answer with (the container answers 400 for
every error, with the message).

Limits: JSON nests at most :data:`MAX_DEPTH` deep (checked before decoding); a request holds at most
``SFT_MAX_INPUTS`` inputs (see :func:`max_inputs`); a forward pass on a CPU pads at most ``SFT_BATCH_TOKENS`` tokens
(:data:`CPU_BATCH_TOKENS`), so long inputs run in smaller chunks and memory stays bounded.

Self-contained: the standard library, numpy, torch and transformers only (the container has nothing else).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any

SETTINGS_FILE = "sagefinetune.json"
JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl", "application/x-ndjson")
CSV = "text/csv"
TEXT = "text/plain"
CONTENT_TYPES = (JSON, *JSONLINES, CSV, TEXT)
PARAMETERS = ("top_k", "all_scores")
PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX512-BF16 / AMX; Arm (e.g. Graviton3) "bf16"
REQUEST_EXAMPLE = '{"inputs": ["a text", "another text"]}'
MAX_DEPTH = 8  # arrays and objects in arrays and objects: the contract needs 3, {"inputs": [["text", "pair"]]}
DEFAULT_MAX_INPUTS = 1024  # per request: 32 forward passes of 32; a larger request waits as long as 32 small ones
CPU_BATCH_TOKENS = 2048  # padded tokens per forward pass on a CPU: 32 inputs of 64 tokens, 4 of 512
CLIP_CHARS = 8  # per token of max_length: longer texts are cut before tokenizing (see Classifier.clip)
_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')  # a JSON string (no raw newline in one)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class RequestError(ValueError):
    """A request the handler cannot answer. ``status``: 400 bad input, 406 unknown Accept, 415 unknown content type."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---- model_fn ----------------------------------------------------------------------------------------------------
class Classifier:
    """A loaded model with what serving needs: label names, problem type, threshold, max length, pairs."""

    def __init__(self, model: Any, tokenizer: Any, settings: dict[str, Any], device: str,
                 precision: str = "fp32") -> None:
        config = model.config
        self.model, self.tokenizer, self.device, self.precision = model, tokenizer, device, precision
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.multi_label = (settings.get("problem_type") or config.problem_type) == "multi_label_classification"
        self.threshold = float(settings.get("threshold", 0.5))
        model_max = getattr(tokenizer, "model_max_length", 512) or 512
        self.max_length = int(settings.get("max_length") or min(512, model_max))
        self.pairs = bool(settings.get("text_pair"))
        self.batch_size = int(os.environ.get("SFT_BATCH_SIZE", "32"))
        self.batch_tokens = int(os.environ.get("SFT_BATCH_TOKENS") or (CPU_BATCH_TOKENS if device == "cpu" else 0))

    def probabilities(self, items: list[Any]) -> Any:
        """Scores (softmax, or sigmoid for multi-label) of checked items, as a numpy array [inputs, labels].

        The items are tokenized together, then run longest first in chunks of similar length (see :func:`chunks`),
        each padded only to its own longest input, and (on a CPU) at most ``batch_tokens`` tokens padded.
        """
        import numpy as np
        import torch

        pairs = [i if isinstance(i, tuple) else (i, "") for i in items]
        firsts = [self.clip(a, b) for a, b in pairs]
        seconds = [self.clip(b, a) for a, b in pairs] if self.pairs else None
        encoded = self.tokenizer(firsts, seconds, truncation=True, max_length=self.max_length)
        names = [n for n in self.tokenizer.model_input_names if n in encoded]
        lengths = [len(ids) for ids in encoded["input_ids"]]
        out = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for chunk in chunks(lengths, self.batch_size, max_tokens=self.batch_tokens):
                logits = self.model(**self._pad(encoded, names, chunk)).logits.float()
                scores = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
                out[chunk] = scores.cpu().numpy()
        return out

    def clip(self, text: str, other: str = "") -> str:
        """The start of ``text`` that makes ``max_length`` tokens and 8 more (and more than a short ``other`` text of
        its pair, which must stay the shorter one), cut at whitespace: the tokens kept are the same, but tokenizing
        a 6 MB text whole took 90 s and 480 MB, and a pair of two 40 KB texts 7 s and 1.2 GB. Tried from
        ``CLIP_CHARS * max_length`` characters, 4 times more each time; a text that never fills them stays whole.
        (Of a pair of two long texts, the tokenizer may then give the odd token of max_length to the other one.)"""
        size, need = CLIP_CHARS * self.max_length, self.max_length + 8
        if len(text) > size and other and len(other) <= size:
            need = max(need, 1 + len(self.tokenizer(other, truncation=True, max_length=4 * size)["input_ids"]))
        while len(text) > size:
            space = max(text.rfind(" ", size // 2, size), text.rfind("\n", size // 2, size))
            cut = text[:space if space > 0 else size]
            if len(self.tokenizer(cut, truncation=True, max_length=need)["input_ids"]) == need:
                return cut
            size *= 4
        return text

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
                                   f"pair; input {i} is {_show(item)}. Fix: "
                                   '{"inputs": [["first text", "second text"]]}.')
            if not self.pairs and isinstance(item, tuple):
                raise RequestError(f"this model takes one text per input; input {i} is a pair {_show(list(item))}. "
                                   f"Fix: {REQUEST_EXAMPLE} (pairs need a model trained with a text_pair column).")

    def format(self, row: Any, parameters: dict[str, Any]) -> Any:
        """One input's answer from its scores: the best label, the top k, all of them, or (multi-label) those above
        the threshold."""
        ranked = sorted(range(len(self.labels)), key=lambda j: -float(row[j]))
        scores: list[dict[str, Any]] = [{"label": self.labels[j], "score": float(row[j])} for j in ranked]
        if parameters.get("all_scores"):
            return scores
        if parameters.get("top_k") is not None:
            return scores[:int(parameters["top_k"])]
        if self.multi_label:
            return [s for s in scores if s["score"] >= self.threshold]
        return scores[0]

    def describe(self) -> str:
        """Where and how it computes, e.g. ``"cpu, bf16"``."""
        return f"{self.device}, {self.precision}"


def model_fn(model_dir: str) -> Classifier:
    """Load model, tokenizer and serving settings from the model folder (never from the Hub), to compute in the
    precision ``SFT_PRECISION`` asks for (``auto`` when unset)."""
    return load(model_dir, os.environ.get("SFT_PRECISION") or "auto")


def load(model_dir: str, precision: str = "auto") -> Classifier:
    """:func:`model_fn` with the precision given: ``auto``, ``fp32`` or ``bf16`` (see :func:`serving_precision`)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    check_precision(precision)
    settings: dict[str, Any] = {}
    path = os.path.join(model_dir, SETTINGS_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            settings = json.load(fh)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    return Classifier(model, tokenizer, settings, device, to_precision(model, device, precision))


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


def read_request(input_data: bytes | str, content_type: str | None, limit: int | None) -> dict[str, Any]:
    """:func:`input_fn` with the most inputs a request may hold (``None``: no limit; 413 above it)."""
    media = media_type(content_type) or JSON
    if media not in CONTENT_TYPES:
        raise RequestError(f"content type {content_type!r} is not served; send {', '.join(CONTENT_TYPES)}. Fix: "
                           f"Content-Type: application/json with a body like {REQUEST_EXAMPLE}.", status=415)
    text = _decode(input_data)
    if media == JSON:
        inputs, parameters = _from_json(_load_json(text, "the request body"), limit)
    elif media in JSONLINES:
        inputs, parameters = _from_lines(text, limit), {}
    elif media == CSV:
        inputs, parameters = _from_csv(text, limit), {}
    else:
        inputs, parameters = ([text] if text.strip() else []), {}
    if not inputs:
        raise RequestError(f"the request holds no inputs ({media}). Fix: send at least one text, e.g. {REQUEST_EXAMPLE}.")
    return {"inputs": inputs, "parameters": check_parameters({**default_parameters(), **parameters})}


def max_inputs() -> int | None:
    """Inputs per request: ``SFT_MAX_INPUTS`` (``0``: no limit), else :data:`DEFAULT_MAX_INPUTS`; no limit in a
    SageMaker batch transform (``SAGEMAKER_BATCH=true``), which sends as many lines as fit in MaxPayloadInMB."""
    default = "0" if os.environ.get("SAGEMAKER_BATCH") == "true" else str(DEFAULT_MAX_INPUTS)
    raw = os.environ.get("SFT_MAX_INPUTS", "").strip() or default
    if not raw.isdigit():
        raise RequestError(f"SFT_MAX_INPUTS must be a whole number (0: no limit); got {raw!r}", status=500)
    return int(raw) or None


def too_many(found: str, limit: int) -> RequestError:
    return RequestError(f"the request holds {found} inputs; this endpoint takes at most {limit:,} per request "
                        f"(max_inputs={limit}). Fix: send at most {limit:,} per request (run.batch_predict for "
                        "many), or deploy with a larger max_inputs (SFT_MAX_INPUTS on SageMaker).", status=413)


def json_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in JSON ``text``, counted up to ``limit + 1``, without recursion: strings are
    dropped, then every innermost ``[]`` or ``{}``, once per level. A bracket left unmatched counts as a level.

    >>> json_depth('{"inputs": [["a", "b]]]"]]}'), json_depth("[" * 5000 + "]" * 5000), json_depth('["a"')
    (3, 9, 1)
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).replace("{", "[").replace("}", "]")
    depth = 0
    while brackets and depth <= limit:
        inner = brackets.replace("[]", "")
        if len(inner) == len(brackets):  # unbalanced (malformed): what is left opens further levels
            return depth + brackets.count("[")
        brackets, depth = inner, depth + 1
    return depth


def media_type(content_type: str | None) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    return (content_type or "").split(";")[0].strip().lower()


def default_parameters() -> dict[str, Any]:
    """Parameters for every request, from ``SFT_PARAMETERS`` (JSON), e.g. ``{"top_k": 2}`` for a batch transform."""
    raw = os.environ.get("SFT_PARAMETERS", "").strip()
    value = json.loads(raw) if raw else {}
    if not isinstance(value, dict):
        raise RequestError(f"SFT_PARAMETERS must be a JSON object; got {raw!r}", status=500)
    return value


def check_parameters(parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, dict):
        raise RequestError(f'"parameters" must be an object; got {_show(parameters)}. Fix: "parameters": {{"top_k": 2}}.')
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise RequestError(f"unknown parameter(s) {unknown}; this handler takes {list(PARAMETERS)}. "
                           'Fix: "parameters": {"top_k": 2} or {"all_scores": true}.')
    top_k = parameters.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RequestError(f'"top_k" must be a whole number >= 1; got {_show(top_k)}. Fix: "parameters": {{"top_k": 2}}.')
    if not isinstance(parameters.get("all_scores", False), bool):
        raise RequestError(f'"all_scores" must be true or false; got {_show(parameters["all_scores"])}.')
    return dict(parameters)


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the request body is not UTF-8 text ({exc}). Fix: encode the body as UTF-8.") from None


def _load_json(text: str, what: str) -> Any:
    if json_depth(text) > MAX_DEPTH:
        raise RequestError(f"{what} has arrays or objects nested more than {MAX_DEPTH} deep; a request needs 3 at "
                           f"most. Fix: send {REQUEST_EXAMPLE}.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RequestError(f"{what} is malformed JSON ({exc}); got {_show(text)}. Fix: send {REQUEST_EXAMPLE}.") from None


def _from_json(body: Any, limit: int | None) -> tuple[list[Any], Any]:
    if isinstance(body, dict):
        if "inputs" not in body:
            raise RequestError(f'the request has no "inputs"; its keys are {sorted(body)}. Fix: send {REQUEST_EXAMPLE}.')
        unknown = sorted(set(body) - {"inputs", "parameters"})
        if unknown:
            raise RequestError(f'unknown request key(s) {unknown}; a request has "inputs" and "parameters". '
                               f"Fix: send {REQUEST_EXAMPLE}.")
        inputs, parameters = body["inputs"], body.get("parameters") or {}
    else:
        inputs, parameters = body, {}
    if isinstance(inputs, (str, dict)):
        inputs = [inputs]
    if not isinstance(inputs, list):
        raise RequestError(f'"inputs" must be a text or a list of texts; got {_show(inputs)}. Fix: send {REQUEST_EXAMPLE}.')
    if limit and len(inputs) > limit:
        raise too_many(f"{len(inputs):,}", limit)
    return [_item(x, f"input {i}") for i, x in enumerate(inputs)], parameters


def _from_lines(text: str, limit: int | None) -> list[Any]:
    items: list[Any] = []
    for n, line in enumerate(io.StringIO(text), 1):  # lines end at "\n" only: a JSON text may hold U+2028
        if line.strip():
            if limit and len(items) == limit:
                raise too_many(f"more than {limit:,}", limit)
            record = _load_json(line, f"line {n}")
            if isinstance(record, dict) and "inputs" in record:
                record = record["inputs"]
            items.append(_item(record, f"line {n}"))
    return items


def _from_csv(text: str, limit: int | None) -> list[Any]:
    items: list[Any] = []
    rows = csv.reader(io.StringIO(text))
    try:
        for n, row in enumerate(rows, 1):
            if len(row) > 2:
                raise RequestError(f"CSV row {n} has {len(row)} columns; a row is one text, or two for a sentence "
                                   'pair. Fix: quote texts that hold commas ("a, b").')
            if row and limit and len(items) == limit:
                raise too_many(f"more than {limit:,}", limit)
            if row:
                items.append(row[0] if len(row) == 1 else (row[0], row[1]))
    except csv.Error as exc:
        raise RequestError(f"CSV row {rows.line_num} cannot be read ({exc}). Fix: send long texts as JSON, e.g. "
                           f"{REQUEST_EXAMPLE}.") from None
    return items


def _item(value: Any, where: str) -> Any:
    """One input: a text, or a pair given as ``[text, text_pair]`` or ``{"text": ..., "text_pair": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        pair = value.get("text_pair")
        if pair is None:
            return value["text"]
        if isinstance(pair, str):
            return (value["text"], pair)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return (value[0], value[1])
    raise RequestError(f"{where} is {_show(value)}; an input is a text, or a [text, text_pair] pair for a model "
                       f"trained on pairs. Fix: send {REQUEST_EXAMPLE}.")


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


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
