"""Application Auto Scaling for a real-time endpoint's variant (``autoscale=(min, max)``): register the scalable
target and its target-tracking policy once the endpoint is InService, find them again (``attach``, ``list``), and
remove them before the endpoint is deleted (:meth:`~.endpoints.ServingBackend.delete_owned`).

The requests come from :mod:`sagefinetune.plans.scaling` (pure); this module sends them through a boto3
``application-autoscaling`` client it is given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.core.console import say
from sagefinetune.errors import AWSError
from sagefinetune.plans.scaling import DIMENSION, NAMESPACE, POLICY_NAME, VARIANT, Autoscale, resource_id

if TYPE_CHECKING:
    from sagefinetune.backends.sagemaker.endpoints import EndpointRecord, ServingBackend

__all__ = ["start", "register", "deregister", "ranges"]

DENIED = ("AccessDenied", "AccessDeniedException")


def start(backend: ServingBackend, endpoint: EndpointRecord, autoscale: Autoscale) -> EndpointRecord:
    """Register the InService endpoint's variant; if that fails, the endpoint is deleted with all it has."""
    endpoint = replace(endpoint, autoscale=(autoscale.min_instances, autoscale.max_instances))
    try:
        register(backend.client("application-autoscaling"), endpoint.name, autoscale)
    except BaseException:
        for item in backend.delete_owned(endpoint):
            print(f"[sagefinetune] deleted {item}")
        raise
    say(f"{endpoint.name} scales between {autoscale.min_instances} and {autoscale.max_instances} instances, targeting "
        f"{autoscale.target_invocations:g} invocations per instance per minute", backend.progress)
    return endpoint


def register(client: Any, endpoint: str, autoscale: Autoscale) -> None:
    """RegisterScalableTarget, then PutScalingPolicy (the endpoint must be InService)."""
    with aws_errors("RegisterScalableTarget"):
        client.register_scalable_target(**autoscale.register_request(endpoint))
    with aws_errors("PutScalingPolicy"):
        client.put_scaling_policy(**autoscale.policy_request(endpoint))


def deregister(client: Any, endpoint: str) -> list[str]:
    """Delete the policy and deregister the target (what is already gone is skipped); return what was removed."""
    target = {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id(endpoint), "ScalableDimension": DIMENSION}
    steps = [("scaling policy", "DeleteScalingPolicy", client.delete_scaling_policy, {**target, "PolicyName": POLICY_NAME}),
             ("scalable target", "DeregisterScalableTarget", client.deregister_scalable_target, target)]
    removed = []
    for what, operation, call, args in steps:
        try:
            with aws_errors(operation):
                call(**args)
        except AWSError as exc:
            # AWS answers ObjectNotFoundException; moto a ValidationException "No scalable target / scaling policy found"
            if exc.code == "ObjectNotFoundException" or (exc.code == "ValidationException" and "No scal" in str(exc)):
                continue
            raise
        removed.append(f"{what} {target['ResourceId']}" + (f" {POLICY_NAME}" if what == "scaling policy" else ""))
    return removed


def ranges(client: Any, endpoints: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Endpoint name -> (min, max) instances of its scalable target (``endpoints``: only these, at most 50; None:
    every one in the region). Empty when this identity may not read Application Auto Scaling."""
    args: dict[str, Any] = {"ServiceNamespace": NAMESPACE, "ScalableDimension": DIMENSION}
    if endpoints:
        args["ResourceIds"] = [resource_id(name) for name in endpoints]
    try:
        with aws_errors("DescribeScalableTargets"):
            pages = list(client.get_paginator("describe_scalable_targets").paginate(**args))
    except AWSError as exc:
        if exc.code in DENIED:
            return {}
        raise
    found = {}
    for target in (t for page in pages for t in page.get("ScalableTargets", [])):
        parts = str(target["ResourceId"]).split("/")  # endpoint/<name>/variant/<variant>
        if len(parts) == 4 and parts[0] == "endpoint" and parts[3] == VARIANT:
            found[parts[1]] = (int(target["MinCapacity"]), int(target["MaxCapacity"]))
    return found
