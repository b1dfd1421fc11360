"""Search spaces for :meth:`Job.tune <sagefinetune.Job.tune>`: one description for Optuna here and SageMaker's tuner.

Each range is a frozen value, checked where it is built (its own ends) and again when a space is given to
``job.tune`` (the hyperparameter's name, type and allowed values, with the same rules as ``Job.hyperparameters``)::

    space = {
        "learning_rate": sft.LogUniform(1e-5, 3e-4),
        "batch_size": sft.Choice([16, 32]),
        "epochs": sft.IntRange(2, 4),
        "warmup": sft.Uniform(0.0, 0.1),
    }
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from sagefinetune.errors import ConfigError

__all__ = ["LogUniform", "Uniform", "IntRange", "Choice", "Range", "check_space"]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number; got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class LogUniform:
    """A real value drawn uniformly on a log scale between ``low`` and ``high`` (both included): learning rates.

    Example:
        >>> LogUniform(1e-5, 3e-4)
        LogUniform(1e-05, 0.0003)
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        low, high = _number(self.low, "LogUniform low"), _number(self.high, "LogUniform high")
        if not 0 < low < high:
            raise ConfigError(f"LogUniform needs 0 < low < high; got LogUniform({self.low!r}, {self.high!r}). "
                              "Fix: e.g. LogUniform(1e-5, 3e-4).")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def ends(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def __repr__(self) -> str:
        return f"LogUniform({self.low!r}, {self.high!r})"


@dataclass(frozen=True)
class Uniform:
    """A real value drawn uniformly between ``low`` and ``high`` (both included): warmup share, weight decay.

    Example:
        >>> Uniform(0.0, 0.1)
        Uniform(0.0, 0.1)
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        low, high = _number(self.low, "Uniform low"), _number(self.high, "Uniform high")
        if not low < high:
            raise ConfigError(f"Uniform needs low < high; got Uniform({self.low!r}, {self.high!r}). Fix: e.g. Uniform(0.0, 0.1).")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def ends(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def __repr__(self) -> str:
        return f"Uniform({self.low!r}, {self.high!r})"


@dataclass(frozen=True)
class IntRange:
    """A whole number from ``low`` to ``high`` (both included), optionally on a log scale: epochs, max_length.

    Example:
        >>> IntRange(2, 5)
        IntRange(2, 5)
    """

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        for name, value in (("low", self.low), ("high", self.high)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"IntRange {name} must be a whole number; got {value!r}. Fix: e.g. IntRange(2, 5).")
        if not self.low < self.high:
            raise ConfigError(f"IntRange needs low < high; got IntRange({self.low!r}, {self.high!r}). Fix: e.g. IntRange(2, 5).")
        if not isinstance(self.log, bool) or (self.log and self.low < 1):
            raise ConfigError(f"IntRange(log=True) needs low >= 1 and log a bool; got low={self.low!r}, log={self.log!r}.")

    def ends(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    def __repr__(self) -> str:
        return f"IntRange({self.low!r}, {self.high!r}{', log=True' if self.log else ''})"


@dataclass(frozen=True)
class Choice:
    """One of a few values, tried as given: batch sizes, max lengths, precisions.

    Example:
        >>> Choice([16, 32])
        Choice([16, 32])
    """

    values: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"Choice needs a non-empty list of values; got {values!r}. Fix: e.g. Choice([16, 32]).")
        kept = tuple(values)
        if len(set(map(repr, kept))) < len(kept):
            raise ConfigError(f"Choice values must differ; got {list(kept)!r}.")
        for value in kept:
            if not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"Choice values must be numbers, booleans or strings; got {value!r}.")
        object.__setattr__(self, "values", kept)

    def ends(self) -> tuple[Any, ...]:
        return self.values

    def __repr__(self) -> str:
        return f"Choice({list(self.values)!r})"


Range = Union[LogUniform, Uniform, IntRange, Choice]
RANGES = (LogUniform, Uniform, IntRange, Choice)


def _kind(param_parse: Any) -> str:
    from sagefinetune.entrypoint.contract import parse_float, parse_int

    return {parse_float: "real", parse_int: "whole"}.get(param_parse, "other")


def check_space(space: Mapping[str, Any]) -> dict[str, Range]:
    """The space as a plain dict, each name and range checked against the rules of ``Job.hyperparameters``.

    Raises:
        ConfigError: naming the hyperparameter, the range and the fix.

    Example:
        >>> check_space({"batch_size": Uniform(8, 64)})
        Traceback (most recent call last):
        ...
        sagefinetune.errors.ConfigError: batch_size takes whole numbers, so Uniform(8.0, 64.0) cannot search it. Fix: IntRange(8, 64) or Choice([...]).
    """
    from sagefinetune.entrypoint.contract import HYPERPARAMETERS
    from sagefinetune.plans.hyperparameters import check_hyperparameter

    if not isinstance(space, Mapping) or not space:
        raise ConfigError(f"a search space is a non-empty dict of hyperparameter -> range; got {space!r}. "
                          "Fix: {'learning_rate': sft.LogUniform(1e-5, 3e-4)}.")
    out: dict[str, Range] = {}
    for name, rng in space.items():
        if not isinstance(rng, RANGES):
            raise ConfigError(f"space[{name!r}] = {rng!r} is not a range. Fix: sft.LogUniform, sft.Uniform, "
                              f"sft.IntRange or sft.Choice, e.g. {{{name!r}: sft.Choice([{rng!r}])}} for one value.")
        if name not in HYPERPARAMETERS:
            check_hyperparameter(name, None)  # unknown: the same message as .hyperparameters(), with the names
        for value in rng.ends():
            try:
                check_hyperparameter(name, value)  # the name, the type and the allowed values, as .hyperparameters()
            except ConfigError as exc:
                problem = str(exc).split(" Fix:")[0].rstrip(".")
                rule = HYPERPARAMETERS[name].rule if "must be" in problem else f"of {name}'s type"
                raise ConfigError(f"space[{name!r}] = {rng!r}: {problem}. Fix: a range of values {rule}.") from None
        kind = _kind(HYPERPARAMETERS[name].parse)
        if isinstance(rng, (LogUniform, Uniform)) and kind != "real":
            takes, fix = (("whole numbers", f"IntRange({math.ceil(rng.low)}, {math.floor(rng.high)}) or Choice([...])")
                          if kind == "whole" else ("one of a few values", "Choice([...])"))
            raise ConfigError(f"{name} takes {takes}, so {rng!r} cannot search it. Fix: {fix}.")
        if isinstance(rng, IntRange) and kind not in ("real", "whole"):
            raise ConfigError(f"{name} is not a number, so {rng!r} cannot search it. Fix: Choice([...]).")
        out[name] = rng
    return out
