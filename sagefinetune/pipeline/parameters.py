"""Execution parameters, checked before an execution starts (here or on SageMaker). Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.local_registry import check_status
from sagefinetune.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from sagefinetune.pipeline.spec import Pipeline


#: The execution parameters' names, shared by the SageMaker graph and the local run.
APPROVAL = "ModelApprovalStatus"
INSTANCE = "InstanceType"
DATA_LOCATION = "DataLocation"  # uploaded data: the content-addressed prefix holding train/, test/ (, validation/)
DATA = {"train": "TrainData", "validation": "ValidationData", "test": "TestData"}  # from_s3 data: one per channel


def check_parameters(pipe: Pipeline, parameters: Mapping[str, Any], *, local: bool = False) -> dict[str, Any]:
    """The parameters as they will be sent; a wrong name or value raises ConfigError naming it and the fix.

    Locally the data and the instance are the Job's own: only thresholds and the approval status apply.
    """
    if not isinstance(parameters, Mapping):
        raise ConfigError(f"parameters must be a mapping of name to value; got {parameters!r}. "
                          "Fix: parameters={'MinEvalF1': 0.9}.")
    names = pipe.parameter_names
    thresholds = {c.parameter: c for c in pipe.conditions}
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if name not in names:
            raise ConfigError(f"unknown pipeline parameter {name!r}{did_you_mean(str(name), names)} "
                              f"Fix: one of {', '.join(names)}.")
        if local and name not in thresholds and name != APPROVAL:
            raise ConfigError(f"{name} is a SageMaker parameter; run_local() trains on the Job's own data, here. "
                              f"Fix: drop it, or change the Job. run_local() takes {', '.join([*thresholds, APPROVAL])}.")
        if name in thresholds:
            out[name] = _threshold(name, value, thresholds[name].metric)
        elif name == APPROVAL:
            out[name] = check_status(value)
        elif name == INSTANCE:
            out[name] = _instance(pipe, value)
        else:
            out[name] = _s3_prefix(name, value)
    return out


def _threshold(name: str, value: Any, metric: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} is the threshold of {metric}: a number; got {value!r}. Fix: {{'{name}': 0.85}}.")
    if metric != "eval_loss" and not (-1 if metric == "eval_mcc" else 0) <= value <= 1:
        raise ConfigError(f"{name}={value!r}: {metric} is a fraction, so that threshold is never met (or always). "
                          f"Fix: {{'{name}': 0.85}}.")
    return float(value)


def _instance(pipe: Pipeline, value: Any) -> str:
    """Another instance type must run the same image with the same process layout (both are in the definition)."""
    from sagefinetune.facts import images
    from sagefinetune.facts.instances import lookup

    if not isinstance(value, str):
        raise ConfigError(f"{INSTANCE} must be an instance type; got {value!r}. Fix: {{'{INSTANCE}': 'ml.g5.xlarge'}}.")
    spec = pipe.plan.sagemaker
    if spec is None:
        raise ConfigError(f"{INSTANCE}: this pipeline trains locally only (instance='local'). "
                          "Fix: job.pipeline(..., instance='ml.g5.xlarge').")
    other = lookup(value)
    pair = images.choose(other)
    if other.gpus != spec.gpus_per_node or pair != spec.image:
        raise ConfigError(
            f"{INSTANCE}={value!r} has {other.gpus} x {other.gpu or 'no GPU'} and the {pair.label} image; the pipeline "
            f"was defined for {spec.gpus_per_node} x {spec.gpu} per node and {spec.image.label} (both are in its "
            f"definition). Fix: an instance with the same GPUs, or job.pipeline(..., instance={value!r}) and upsert().")
    return value


def _s3_prefix(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("s3://") or len(value) < 8:
        raise ConfigError(f"{name} must be an s3:// prefix; got {value!r}. Fix: {{'{name}': 's3://bucket/data/'}}.")
    if name == DATA_LOCATION or name in DATA.values():
        return value if value.endswith("/") else value + "/"
    return value
