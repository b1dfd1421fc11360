"""The hyperparameters a user sets with ``Job.hyperparameters()``, their defaults, and the check of each value."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sagefinetune.entrypoint.contract import HYPERPARAMETERS, parse_str
from sagefinetune.errors import ConfigError, did_you_mean

__all__ = ["USER_HYPERPARAMETERS", "DEFAULT_HYPERPARAMETERS", "check_hyperparameter"]

#: Hyperparameters a user sets with Job.hyperparameters(); the rest are derived from the Job.
USER_HYPERPARAMETERS = tuple(
    k for k in HYPERPARAMETERS if k not in ("model_name_or_path", "config_overrides", "reinitialize", "labels",
                                             "problem_type", "label_mapping", "text_column", "text_pair_column",
                                             "label_column")
)
#: The learning rate and warmup are left out: the plan chooses them for the model's size (see sagefinetune.facts.defaults).
DEFAULT_HYPERPARAMETERS: Mapping[str, Any] = MappingProxyType({"epochs": 3, "batch_size": 32, "max_length": 256})


def check_hyperparameter(name: str, value: Any) -> None:
    """A hyperparameter a user may set, of the right type and within its rule; else a ConfigError with the fix."""
    if name not in USER_HYPERPARAMETERS:
        raise ConfigError(f"unknown hyperparameter {name!r}{did_you_mean(name, USER_HYPERPARAMETERS)} "
                          f"Fix: one of {', '.join(USER_HYPERPARAMETERS)} (see the hyperparameters page).")
    param = HYPERPARAMETERS[name]
    wrong_type = isinstance(value, str) and param.parse is not parse_str
    try:
        parsed = None if wrong_type else param.parse(value)
    except (TypeError, ValueError):
        wrong_type = True
    if wrong_type:
        raise ConfigError(f"hyperparameter {name}={value!r} has the wrong type; {param.help} "
                          f"(default {param.default!r}). Fix: .hyperparameters({name}={param.default!r}).")
    if param.check is not None and not param.check(parsed):
        raise ConfigError(f"hyperparameter {name}={value!r} must be {param.rule}. "
                          f"Fix: .hyperparameters({name}=<a value {param.rule}>), e.g. {param.default!r}.")
