"""Batch predictions on this machine: JSON Lines in, JSON Lines out, through the serving handler.

It does what a SageMaker batch transform does with the same handler (``SplitType=Line``, ``BatchStrategy=
MultiRecord``, ``AssembleWith=Line``): the input is split into lines, mini-batches of lines go through
``input_fn`` / ``predict_fn`` / ``output_fn`` as ``application/jsonlines``, and the answers are joined line by line.
So the output file is the same file a batch transform writes: one prediction per input line, in order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sagefinetune.errors import ConfigError, DataError, did_you_mean

__all__ = ["batch_predict_local", "jsonlines_records", "BATCH_OPTIONS"]

JSONLINES = "application/jsonlines"
BATCH_OPTIONS: dict[str, Any] = {"batch_size": 64, "top_k": None, "all_scores": False, "progress": True}


def batch_predict_local(model_dir: str | Path, data: Any, output_path: str | Path, **options: Any) -> Path:
    """Predict every input of ``data`` with the serving handler in this process; write JSON Lines to ``output_path``.

    Args:
        model_dir: a model folder (``run.model_dir``).
        data: a :class:`~sagefinetune.Dataset` (its test split), a list of texts (or ``(text, text_pair)`` tuples),
            or a ``.jsonl`` file of records as an endpoint takes them (a text, ``{"inputs": ...}`` or
            ``{"text": ..., "text_pair": ...}`` per line).
        output_path: the JSON Lines file to write (its folder is created).
        **options: ``batch_size`` (64 lines per mini-batch), ``top_k`` / ``all_scores`` (as for an endpoint),
            ``progress`` (a progress bar).

    Returns:
        The output path. Line i holds the prediction for input i, as an endpoint answers it.

    Example:
        >>> batch_predict_local(run.model_dir, ["a match report", "a budget"], "preds.jsonl")  # doctest: +SKIP
        PosixPath('preds.jsonl')
    """
    from sagefinetune.entrypoint import inference as handler
    from sagefinetune.runtime.predict import check_model_dir
    from sagefinetune.serving.classifiers import load_classifier

    settings = _check_options(options)
    folder = check_model_dir(model_dir)
    lines = list(jsonlines_records(data))
    parameters = handler.check_parameters({k: settings[k] for k in ("top_k", "all_scores") if settings[k]})
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    classifier = load_classifier(folder)
    tmp = output.with_name(output.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as out:
        for start in _progress(range(0, len(lines), settings["batch_size"]), len(lines), settings):
            body = "".join(lines[start:start + settings["batch_size"]])
            try:
                request = handler.read_request(body, JSONLINES, None)  # batch_size lines: no input limit
                request["parameters"] = {**request["parameters"], **parameters}
                out.write(handler.output_fn(handler.predict_fn(request, classifier), JSONLINES))
            except handler.RequestError as exc:
                raise ConfigError(f"input lines {start + 1}-{start + body.count(chr(10))}: {exc}") from None
    os.replace(tmp, output)
    print(f"[sagefinetune] wrote {len(lines)} predictions to {output}")
    return output


def jsonlines_records(data: Any, split: str = "test") -> Iterator[str]:
    """The JSON Lines a batch job reads for ``data`` (see :func:`batch_predict_local`), one per input, each ending
    in a newline. A SageMaker batch transform can upload exactly these lines."""
    from sagefinetune.data.dataset import Dataset

    if isinstance(data, Dataset):
        yield from _from_dataset(data, split)
    elif isinstance(data, (str, Path)) and (isinstance(data, Path) or not str(data).startswith("s3://")):
        yield from _from_file(Path(data))
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and data:
        for i, item in enumerate(data):
            yield json.dumps({"inputs": _input(item, i)}, ensure_ascii=False) + "\n"
    else:
        raise ConfigError(f"batch predictions read a sagefinetune Dataset, a non-empty list of texts or a .jsonl file "
                          f"here; got {_show(data)}. Fix: run.batch_predict(['a text', ...]), or for s3:// data "
                          "instance='ml.m5.xlarge' (a SageMaker batch transform).")


def _from_dataset(data: Any, split_name: str = "test") -> Iterator[str]:
    if data.is_remote:
        raise ConfigError("from_s3 data is read where it is, by a SageMaker batch transform. Fix: "
                          "run.batch_predict(data, instance='ml.m5.xlarge'), or a local copy with Dataset.from_json.")
    loaded = data.load()
    if split_name not in loaded:
        raise DataError(f"the Dataset has no {split_name} split (it has {sorted(loaded)}). "
                        f"Fix: split='{next(iter(loaded))}'.")
    split = loaded[split_name]
    pairs = split["text_pair"] if "text_pair" in split.column_names else None
    for i, text in enumerate(split["text"]):
        value: Any = [text or "", pairs[i] or ""] if pairs is not None else (text or "")
        yield json.dumps({"inputs": value}, ensure_ascii=False) + "\n"


def _from_file(path: Path) -> Iterator[str]:
    if not path.is_file():
        raise ConfigError(f"{str(path)!r} is not a file. Fix: pass a .jsonl file, a list of texts or a Dataset.")
    with open(path, encoding="utf-8") as fh:
        found = False
        for line in fh:
            if line.strip():
                found = True
                yield line if line.endswith("\n") else line + "\n"
    if not found:
        raise ConfigError(f"{path} holds no lines to predict. Fix: one JSON record per line, e.g. {{\"inputs\": \"a text\"}}.")


def _input(item: Any, i: int) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, str) for t in item):
        return list(item)
    raise ConfigError(f"input {i} is {_show(item)}; batch predictions take texts, or (text, text_pair) tuples for a "
                      "model trained on pairs. Fix: run.batch_predict(['a text', ...]).")


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(BATCH_OPTIONS))
    if unknown:
        what = f"{unknown[0]} is not an option" if len(unknown) == 1 else f"{', '.join(unknown)} are not options"
        raise ConfigError(f"{what} of local batch predictions{did_you_mean(unknown[0], list(BATCH_OPTIONS)) or '.'} "
                          f"Local options: {', '.join(BATCH_OPTIONS)}. Fix: drop them, or run a SageMaker batch "
                          "transform with instance='ml.m5.xlarge'.")
    settings = {**BATCH_OPTIONS, **options}
    size = settings["batch_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"batch_size must be a whole number >= 1; got {size!r}. Fix: batch_size=64.")
    return settings


def _progress(steps: range, total: int, settings: dict[str, Any]) -> Any:
    if not settings["progress"] or len(steps) < 2:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=f"batch predictions ({total} inputs)", unit="batch")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."
