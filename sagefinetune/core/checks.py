"""Small argument checks shared by the builders and the plan. Each error names the value found and the fix."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sagefinetune.errors import ConfigError


def boolean(name: str, value: Any, example: str) -> bool:
    """A real bool: ``"false"`` is a non-empty string, and ``bool("false")`` would be True."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False; got {value!r} ({type(value).__name__}). Fix: {example}.")
    return value


def positive_number(name: str, value: Any, example: str) -> float:
    """A finite number > 0 (not a bool, not NaN or infinity)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ConfigError(f"{name} must be a finite number > 0; got {value!r}. Fix: {example}.")
    return float(value)


def string_mapping(name: str, value: Any, example: str) -> dict[str, str]:
    """A mapping of non-empty strings to strings (tags, environment variables)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping of strings to strings; got a {type(value).__name__} {value!r}. "
                          f"Fix: {example}.")
    bad = {k: v for k, v in value.items() if not isinstance(k, str) or not k or not isinstance(v, str)}
    if bad:
        raise ConfigError(f"{name} must map non-empty strings to strings; got {bad!r}. Fix: {example}.")
    return dict(value)


def id_list(name: str, value: Any, prefix: str) -> tuple[str, ...]:
    """AWS resource ids, as a list. Text is refused rather than guessed at: ``"subnet-a,subnet-b"`` would reach
    SageMaker as one id that does not exist; the fix shows the list to write."""
    if value is None:
        return ()
    if isinstance(value, str):
        ids = [v.strip() for v in value.split(",") if v.strip()] or [value]
        raise ConfigError(f"{name} must be a list of ids; got the string {value!r}. Fix: {name}={ids!r} (a list, "
                          "one id per item).")
    items = value
    if not isinstance(items, Sequence) or isinstance(items, (bytes, bytearray)):
        raise ConfigError(f"{name} must be a list of ids such as ['{prefix}0abc1234']; got {value!r}. "
                          f"Fix: {name}=['{prefix}0abc1234'].")
    bad = [v for v in items if not isinstance(v, str) or not v.startswith(prefix)]
    if bad:
        raise ConfigError(f"{name} holds {bad[0]!r}, which is not an id starting with {prefix!r}. "
                          f"Fix: {name}=['{prefix}0abc1234'].")
    return tuple(items)


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def bucket_name(value: Any) -> str | None:
    """An S3 bucket name (not a URI, no slash)."""
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("s3://"):
        name, _, rest = value[5:].partition("/")
        hint = f"bucket={name!r}" + (f", prefix={rest.strip('/')!r}" if rest.strip("/") else "")
        raise ConfigError(f"bucket takes a bucket name, not a URI; got {value!r}. Fix: {hint}.")
    if not isinstance(value, str) or not _BUCKET.fullmatch(value) or ".." in value:
        raise ConfigError(f"bucket={value!r} is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-'). "
                          "Fix: bucket='my-sagemaker-bucket'.")
    return value


def check_precision(precision: Any) -> str:
    """``precision=`` of a Predictor or a local endpoint, checked before anything loads."""
    from sagefinetune.entrypoint.inference import check_precision as check

    try:
        return check(precision)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def non_empty_string(value: Any, where: str, example: str) -> None:
    """``value`` is a string with something in it, else a ConfigError naming ``where`` and the ``example`` fix."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} needs a non-empty string; got {value!r}. Fix: {example}.")


def seed(value: Any, where: str) -> None:
    """numpy's and datasets' generators take seeds in [0, 2**32); -1 would fail inside them at load."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{where}(seed=...) needs an int in [0, 2**32); got {value!r}. Fix: {where}(..., seed=42).")
