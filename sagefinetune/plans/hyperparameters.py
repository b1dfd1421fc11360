"""The hyperparameters a user sets with ``Job.hyperparameters()``, their defaults, and the check of each value."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sagefinetune.entrypoint.contract import HYPERPARAMETERS, parse_str
from sagefinetune.errors import ConfigError, did_you_mean

__all__ = ["USER_HYPERPARAMETERS", "DEFAULT_HYPERPARAMETERS", "LIBRARY_VALUES", "check_hyperparameter"]

#: Hyperparameters a user sets with Job.hyperparameters(); the rest are derived from the Job.
USER_HYPERPARAMETERS = tuple(
    k for k in HYPERPARAMETERS if k not in ("model_name_or_path", "config_overrides", "labels", "problem_type",
                                             "label_mapping", "text_column", "text_pair_column", "label_column")
)
#: The learning rate and warmup are left out: the plan chooses them for the model's size (see sagefinetune.facts.defaults).
#: ``max_length="auto"``: the plan chooses it from the train rows' token lengths (see sagefinetune.cost.length).
DEFAULT_HYPERPARAMETERS: Mapping[str, Any] = MappingProxyType({"epochs": 3, "batch_size": 32, "max_length": "auto"})
#: Values the library takes for a hyperparameter beside the entry point's type: resolved before launch.
LIBRARY_VALUES: Mapping[str, tuple[str, ...]] = MappingProxyType({"max_length": ("auto",)})


def check_hyperparameter(name: str, value: Any) -> None:
    """A hyperparameter a user may set, of the right type and within its rule; else a ConfigError with the fix."""
    if name not in USER_HYPERPARAMETERS:
        raise ConfigError(f"unknown hyperparameter {name!r}{did_you_mean(name, USER_HYPERPARAMETERS)} "
                          f"Fix: one of {', '.join(USER_HYPERPARAMETERS)} (see the hyperparameters page).")
    param = HYPERPARAMETERS[name]
    extra = LIBRARY_VALUES.get(name, ())
    if isinstance(value, str) and value in extra:
        return
    default = DEFAULT_HYPERPARAMETERS.get(name, param.default)
    rule = param.rule + "".join(f", or {v!r}" for v in extra)
    wrong_type = isinstance(value, str) and param.parse is not parse_str
    try:
        parsed = None if wrong_type else param.parse(value)
    except (TypeError, ValueError):
        wrong_type = True
    if wrong_type:
        raise ConfigError(f"hyperparameter {name}={value!r} has the wrong type; {param.help} "
                          f"(default {default!r}). Fix: .hyperparameters({name}={default!r}).")
    if param.check is not None and not param.check(parsed):
        raise ConfigError(f"hyperparameter {name}={value!r} must be {rule}. "
                          f"Fix: .hyperparameters({name}=<a value {rule}>), e.g. {default!r}.")
