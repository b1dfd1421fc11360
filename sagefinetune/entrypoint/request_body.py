"""The serving handler's requests: the body read into inputs and parameters, and the limits a request must keep.

Beside ``code/inference.py`` in every model folder (the toolkit puts ``code/`` on ``sys.path``), and imported by the
local endpoint through it. Standard library only. A request the handler cannot answer raises :class:`RequestError`,
whose ``status`` is the HTTP status to answer with.

Empty texts: an input whose text (or either text of a pair) is empty or whitespace only is refused (400, with its
index; see :func:`blank_inputs`), as training refuses them and as the Predictor does.

Limits: JSON nests at most :data:`MAX_DEPTH` deep (checked before it is decoded, so a deep body costs no recursion);
a request holds at most ``SFT_MAX_INPUTS`` inputs (see :func:`max_inputs`), 413 above.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any

JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl", "application/x-ndjson")
CSV = "text/csv"
TEXT = "text/plain"
CONTENT_TYPES = (JSON, *JSONLINES, CSV, TEXT)
PARAMETERS = ("top_k", "all_scores")
REQUEST_EXAMPLE = '{"inputs": ["a text", "another text"]}'
MAX_DEPTH = 8  # arrays and objects in arrays and objects: the contract needs 3, {"inputs": [["text", "pair"]]}
DEFAULT_MAX_INPUTS = 1024  # per request: 32 forward passes of 32; a larger request waits as long as 32 small ones
_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')  # a JSON string (no raw newline in one)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class RequestError(ValueError):
    """A request the handler cannot answer. ``status``: 400 bad input, 406 unknown Accept, 413 too many inputs,
    415 unknown content type."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
    blank = blank_inputs(inputs)
    if blank:
        raise RequestError(blank)
    return {"inputs": inputs, "parameters": check_parameters({**default_parameters(), **parameters})}


def blank_inputs(items: list[Any]) -> str | None:
    """The error for inputs whose text, or either text of a pair, is empty or whitespace only; None if there are none.

    One rule for training and every place that predicts (Predictor, local endpoint, SageMaker handler): training
    refuses empty texts, so a model has never seen one, and its answer for one would be a guess that looks like any
    other prediction (and an empty text is most often a missing value turned into ``""``).

    >>> blank_inputs(["a text", ("a", "b")]) is None, blank_inputs(["a text", " ", ""]).split(";")[0]
    (True, "input 1 is empty or whitespace only (' ')")
    """
    where = [i for i, item in enumerate(items)
             if any(not t.strip() for t in (item if isinstance(item, tuple) else (item,)) if isinstance(t, str))]
    if not where:
        return None
    more = f"; {len(where) - 1} more input(s) are too, the next is input {where[1]}" if len(where) > 1 else ""
    return (f"input {where[0]} is empty or whitespace only ({show(items[where[0]])}){more}. A model is never trained on "
            "an empty text, so its answer for one would be a guess. Fix: drop empty texts before predicting, e.g. "
            "[t for t in texts if t.strip()], or send a text.")


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
        raise RequestError(f'"parameters" must be an object; got {show(parameters)}. Fix: "parameters": {{"top_k": 2}}.')
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise RequestError(f"unknown parameter(s) {unknown}; this handler takes {list(PARAMETERS)}. "
                           'Fix: "parameters": {"top_k": 2} or {"all_scores": true}.')
    top_k = parameters.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RequestError(f'"top_k" must be a whole number >= 1; got {show(top_k)}. Fix: "parameters": {{"top_k": 2}}.')
    if not isinstance(parameters.get("all_scores", False), bool):
        raise RequestError(f'"all_scores" must be true or false; got {show(parameters["all_scores"])}.')
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
        raise RequestError(f"{what} is malformed JSON ({exc}); got {show(text)}. Fix: send {REQUEST_EXAMPLE}.") from None


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
        raise RequestError(f'"inputs" must be a text or a list of texts; got {show(inputs)}. Fix: send {REQUEST_EXAMPLE}.')
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
    raise RequestError(f"{where} is {show(value)}; an input is a text, or a [text, text_pair] pair for a model "
                       f"trained on pairs. Fix: send {REQUEST_EXAMPLE}.")


def show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
