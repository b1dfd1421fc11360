"""What ``predict`` takes, for the :class:`~sagefinetune.Predictor` and every :class:`~sagefinetune.Endpoint`: one
contract, checked in one place.

Inputs: a text; a ``(text, text_pair)`` tuple (one sentence pair); or any ordered collection of them: a list, a
tuple of pairs, a pandas Series, a numpy array, a 🤗 datasets column (``ds["text"]``), a generator. A pair inside a
collection is a tuple, a 2-list or a row of a 2-column numpy array. Refused, with the fix: a DataFrame or a datasets
Dataset (iterating one yields its column names or rows: pass a column), a dict, a set (it has no order), bytes, and
an item that is not text (``None`` or NaN: a missing value).

Answers: always a list, one answer per input, in order (a single text is a list of one), the same from the
Predictor, a local endpoint and a SageMaker endpoint. Parameters: ``top_k`` (the k best labels, as a list) or
``all_scores`` (every label, best first).

Example:
    >>> as_inputs("a text"), as_inputs(("a premise", "a hypothesis")), as_inputs(iter(["a", "b"]), pairs=False)
    (['a text'], [('a premise', 'a hypothesis')], ['a', 'b'])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sagefinetune.errors import ConfigError

__all__ = ["as_inputs", "check_options", "Input"]

Input = str | tuple[str, str]
EXAMPLE = "predict(['a text', 'another text'])"
PAIR_EXAMPLE = "predict([('first text', 'second text')])"


def as_inputs(texts: Any, pairs: bool | None = None) -> list[Input]:
    """The inputs in ``texts`` as a list of texts and ``(text, text_pair)`` tuples (``[]`` for an empty collection).

    Args:
        pairs: whether the model was trained on sentence pairs (each input is then a pair); ``None`` when it is not
            known here (an endpoint: its handler checks).
    """
    if isinstance(texts, str):
        return [str(texts)]
    if isinstance(texts, tuple):
        if pairs is False:
            raise ConfigError(
                f"this model was not trained on sentence pairs, and a tuple reads as one (text, text_pair) pair; got "
                f"{short(texts)}. Fix: predict({short(list(texts))}) for several texts (a list), or train on pairs "
                "with .columns(text_pair=...) to classify pairs.")
        if _pair(texts):  # one pair; a tuple of pairs is a collection
            return [(str(texts[0]), str(texts[1]))]
    _check_collection(texts)
    return [_item(item, i, pairs) for i, item in enumerate(texts)]


def check_options(top_k: Any, all_scores: Any) -> dict[str, Any]:
    """The request parameters for ``top_k`` and ``all_scores`` (only those set), or a ConfigError."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be a whole number >= 1 (the k best labels); got {top_k!r}. "
                          "Fix: predict(texts, top_k=2), or all_scores=True for every label.")
    if not isinstance(all_scores, bool):
        raise ConfigError(f"all_scores must be True or False; got {all_scores!r}. Fix: predict(texts, all_scores=True).")
    return {**({"top_k": top_k} if top_k is not None else {}), **({"all_scores": True} if all_scores else {})}


def _check_collection(texts: Any) -> None:
    kind = type(texts).__name__
    if hasattr(texts, "columns") or hasattr(texts, "column_names"):
        raise ConfigError(f"predict takes texts, not a table; got a {kind} (iterating one yields its column names "
                          "or rows). Fix: pass its text column, predict(df['text']) or predict(ds['text']); for pairs, "
                          "predict(list(zip(df['text'], df['text_pair']))).")
    if isinstance(texts, (bytes, bytearray, Mapping, set, frozenset)) or not isinstance(texts, Iterable):
        why = " (a set has no order, so the answers could not be matched to the texts)" if isinstance(
            texts, (set, frozenset)) else ""
        raise ConfigError(f"predict needs a text or a collection of texts (a list, a pandas Series, a numpy array, "
                          f"a datasets column); got {short(texts)} ({kind}){why}. Fix: {EXAMPLE}.")


def _item(item: Any, i: int, pairs: bool | None) -> Input:
    if isinstance(item, str) and pairs is not True:
        return str(item)
    if _pair(item) and pairs is not False:
        return (str(item[0]), str(item[1]))
    missing = item is None or (isinstance(item, float) and math.isnan(item)) or type(item).__name__ == "NAType"
    fix = (" (a missing value). Fix: drop or fill missing values first, e.g. predict(df['text'].dropna())"
           if missing else ". Fix: " + (PAIR_EXAMPLE if pairs else EXAMPLE))
    if pairs:
        raise ConfigError(f"this model was trained on sentence pairs: each input is a (text, text_pair) tuple; got "
                          f"{short(item)} (input {i}){fix}.")
    if pairs is False:
        more = "" if missing else " (sentence pairs need a model trained with .columns(text_pair=...))"
        raise ConfigError(f"this model takes one text per input; got {short(item)} (input {i}){fix}{more}.")
    raise ConfigError(f"an input is a text, or a (text, text_pair) tuple for a model trained on pairs; got "
                      f"{short(item)} (input {i}){fix}.")


def _pair(item: Any) -> bool:
    """A 2-tuple, 2-list or 2-row (numpy) of texts."""
    if isinstance(item, (str, bytes, Mapping)) or not hasattr(item, "__len__") or not hasattr(item, "__getitem__"):
        return False
    try:
        return len(item) == 2 and all(isinstance(item[j], str) for j in (0, 1))
    except (TypeError, KeyError, IndexError):
        return False


def short(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...]"
