"""How a real-time endpoint scales (``autoscale=(min, max)``): Application Auto Scaling's requests, checked (pure).

A scalable target on the variant's instance count (``endpoint/<name>/variant/AllTraffic``,
``sagemaker:variant:DesiredInstanceCount``) and a target-tracking policy on the predefined metric
``SageMakerVariantInvocationsPerInstance`` (invocations per instance per minute). The backend
(:mod:`sagefinetune.backends.sagemaker.autoscaling`) sends them once the endpoint is InService, and removes them
before the endpoint is deleted.

The default target, :data:`DEFAULT_TARGET_INVOCATIONS`, follows AWS's rule for this metric (the highest
sustainable requests per second x 60 x a safety factor of 0.5) applied to the closest measured figure in
``docs/benchmarks.rst``: 88.7 requests/s for MiniLM-L6 answering one request per forward pass in fp32 on 2 vCPUs
(the "naive pipeline, serial" server, which serves as the Hugging Face inference container does: no batching across
requests), for texts of up to 128 tokens. 88.7 x 60 x 0.5 = 2661, rounded down to 2600. A 4-vCPU ``ml.m5.xlarge``
or a GPU serves more, so this scales out early there (safe, costs more); longer texts serve fewer, so measure yours
and pass ``target_invocations=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagefinetune.core.checks import positive_number
from sagefinetune.errors import ConfigError

#: Invocations per instance per minute that the policy tracks: 88.7 requests/s measured x 60 x 0.5 (see above).
DEFAULT_TARGET_INVOCATIONS = 2600
MAX_INSTANCES = 100  # the same limit as instance_count: each instance bills per hour
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY_NAME = "sagefinetune-invocations-per-instance"
SCALE_OUT_COOLDOWN = 60  # seconds: add instances soon after a burst starts (a new instance takes minutes to start)
SCALE_IN_COOLDOWN = 300  # seconds: remove them only once the load has stayed low a while
VARIANT = "AllTraffic"


def resource_id(endpoint: str, variant: str = VARIANT) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


@dataclass(frozen=True)
class Autoscale:
    """``autoscale=(min_instances, max_instances)`` and the target of invocations per instance per minute."""

    min_instances: int
    max_instances: int
    target_invocations: float = DEFAULT_TARGET_INVOCATIONS

    def register_request(self, endpoint: str) -> dict[str, Any]:
        """RegisterScalableTarget: the variant's instance count, between min and max."""
        return {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id(endpoint), "ScalableDimension": DIMENSION,
                "MinCapacity": self.min_instances, "MaxCapacity": self.max_instances}

    def policy_request(self, endpoint: str) -> dict[str, Any]:
        """PutScalingPolicy: target tracking on invocations per instance."""
        return {"PolicyName": POLICY_NAME, "ServiceNamespace": NAMESPACE, "ResourceId": resource_id(endpoint),
                "ScalableDimension": DIMENSION, "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": float(self.target_invocations),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
                    "ScaleOutCooldown": SCALE_OUT_COOLDOWN, "ScaleInCooldown": SCALE_IN_COOLDOWN}}

    def line(self, hourly_cost: float | None = None) -> str:
        cost = (f": ${hourly_cost * self.min_instances:.3f}/h to ${hourly_cost * self.max_instances:.3f}/h"
                if hourly_cost else "")
        return (f"  scaling  {self.min_instances}..{self.max_instances} instances, target {self.target_invocations:g} "
                f"invocations per instance per minute (Application Auto Scaling){cost}")


def check_range(value: Any) -> tuple[int, int]:
    """``autoscale=(min, max)``: whole numbers, 1 <= min <= max <= :data:`MAX_INSTANCES`."""
    if isinstance(value, (tuple, list)) and len(value) == 3:
        raise ConfigError(f"autoscale={value!r} takes (min, max) only; the target has its own option. "
                          f"Fix: autoscale=({value[0]!r}, {value[1]!r}), target_invocations={value[2]!r}.")
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"autoscale={value!r} must be (min instances, max instances), two whole numbers. "
                          "Fix: autoscale=(1, 4).")
    low, high = value
    if low < 1:
        raise ConfigError(f"autoscale={value!r}: min must be at least 1; a real-time endpoint's variant does not scale "
                          "to 0 instances (that needs SageMaker inference components). Fix: autoscale=(1, "
                          f"{max(high, 1)}), or serverless=True, which bills nothing while idle.")
    if low > high:
        raise ConfigError(f"autoscale={value!r}: min {low} is more than max {high}. Fix: autoscale=({high}, {low}).")
    if high > MAX_INSTANCES:
        raise ConfigError(f"autoscale={value!r}: max {high} is more than {MAX_INSTANCES} instances (the limit of "
                          f"instance_count too; each bills per hour). Fix: autoscale=({low}, {min(MAX_INSTANCES, 4)}).")
    return low, high


def plan_autoscale(options: Mapping[str, Any], kind: str, count: int) -> tuple[Autoscale | None, int]:
    """``autoscale`` and ``target_invocations`` of a deploy, checked; and the instance count to start with (min,
    unless ``instance_count`` is given within the range)."""
    value, target = options.get("autoscale"), options.get("target_invocations")
    if value is None:
        if target is not None:
            raise ConfigError(f"target_invocations={target!r} applies with autoscale only. Fix: add autoscale=(1, 4), "
                              "or drop target_invocations.")
        return None, count
    if kind == "serverless":
        raise ConfigError(f"autoscale={value!r} applies to real-time endpoints; a serverless endpoint scales by itself, "
                          "up to max_concurrency requests at a time. Fix: drop autoscale (set max_concurrency=...), or "
                          "drop serverless=True for instances that autoscale.")
    low, high = check_range(value)
    if "instance_count" in options and not low <= count <= high:
        raise ConfigError(f"instance_count={count} is outside autoscale={value!r}: the endpoint starts with "
                          f"instance_count instances and scales between min and max. Fix: instance_count={low}, or "
                          "drop instance_count (it then starts at min).")
    if options.get("wait") is False:
        raise ConfigError("autoscale needs the endpoint InService before Application Auto Scaling accepts its variant, "
                          "so the deploy waits for it. Fix: drop wait=False, or drop autoscale.")
    if target is not None:
        target = positive_number("target_invocations", target, "target_invocations=600 (invocations per instance "
                                 "per minute)")
    return Autoscale(low, high, DEFAULT_TARGET_INVOCATIONS if target is None else target), (
        count if "instance_count" in options else low)
