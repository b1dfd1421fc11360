"""When an endpoint ends (``ttl=``): the ttl checked, the expiry time, and the EventBridge Scheduler requests that
delete the endpoint, its config and its model then.

Pure: no I/O. :mod:`sagefinetune.backends.sagemaker.schedules` sends the requests; a local endpoint's server exits
at its expiry by itself (:mod:`sagefinetune.serving.server`).

The design: one-time schedules (``at(yyyy-mm-ddThh:mm:ss)``, UTC, ``ActionAfterCompletion=DELETE`` so they remove
themselves once they ran) in the schedule group ``sagefinetune``, each calling one SageMaker API through the
universal target ``arn:aws:scheduler:::aws-sdk:sagemaker:<action>``: DeleteEndpoint at the expiry, DeleteModel and
DeleteEndpointConfig :data:`CLEANUP_DELAY` later. The endpoint goes first because it is what bills; its config and
model cost nothing, and keeping them a few minutes longer keeps the endpoint describable (instance type, count)
while SageMaker takes it down. Deleting the endpoint also deregisters its autoscaling target (Application Auto
Scaling does that when the deleting role may call DeregisterScalableTarget), so no schedule is needed for that.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from typing import Any
from urllib.parse import unquote

from sagefinetune.errors import ConfigError

EXPIRES_TAG = "sagefinetune:expires-at"  # on the endpoint: list() and attach() read the expiry from it
SCHEDULE_GROUP = "sagefinetune"
SCHEDULER_ROLE_ENV = "SFT_SCHEDULER_ROLE"
SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"
MIN_SAGEMAKER_TTL = 300  # seconds: the scheduler fires to the minute, and an endpoint takes minutes to come InService
CLEANUP_DELAY = 600  # seconds after the expiry that the endpoint config and the model are deleted
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ROLE_NEEDS = (
    "a role that EventBridge Scheduler can assume (trust policy: Principal {\"Service\": \"scheduler.amazonaws.com\"}, "
    "Action sts:AssumeRole) with permission for sagemaker:DeleteEndpoint, sagemaker:DeleteEndpointConfig and "
    "sagemaker:DeleteModel (and application-autoscaling:DeregisterScalableTarget when the endpoint autoscales)"
)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")


@dataclass(frozen=True)
class Expiry:
    """A deploy's ``ttl=``: how long the endpoint lives, and the role the deleting schedules run as (None: not given;
    the backend then reads ``$SFT_SCHEDULER_ROLE`` and says what is needed if that is empty too)."""

    ttl_seconds: float
    scheduler_role: str | None = None

    def line(self, hourly_cost: float | None = None, instances: int = 1, now: datetime | None = None) -> str:
        at = (now or datetime.now(timezone.utc)) + timedelta(seconds=self.ttl_seconds)
        cost = (f"; ${hourly_cost * instances * self.ttl_seconds / 3600:.2f} for {instances} instance(s) over the ttl"
                if hourly_cost else "")
        role = self.scheduler_role or f"${SCHEDULER_ROLE_ENV} (scheduler_role= not given)"
        return (f"  expires  {human(self.ttl_seconds)} after it is created (about {at:%Y-%m-%d %H:%M} UTC{cost}): "
                f"EventBridge Scheduler deletes endpoint, config and model, as {role}")


def human(seconds: float) -> str:
    """``4h``, ``1d2h``, ``90s``: a ttl as people write it."""
    rest, parts = round(seconds), list[str]()
    for unit, size in _UNITS.items():
        if rest >= size or (unit == "s" and not parts):
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def parse_ttl(value: Any, minimum: float = MIN_SAGEMAKER_TTL) -> float:
    """Seconds from ``"30m"``, ``"4h"``, ``"1d"``, ``"1h30m"`` or a number of seconds; > 0 and at least ``minimum``."""
    fix = "ttl='4h' (or '30m', '1d', or seconds: 14400)"
    if isinstance(value, str) and re.fullmatch(r"\s*(\d+(\.\d+)?\s*[dhms]\s*)+", value):
        seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", value))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(f"ttl={value!r} is not a duration. Fix: {fix}.")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"ttl={value!r} must be a duration longer than 0. Fix: {fix}, or drop ttl for an endpoint "
                          "that runs until it is deleted.")
    if seconds < minimum:
        raise ConfigError(f"ttl={value!r} is {seconds:g}s; a SageMaker endpoint needs at least {minimum / 60:g} "
                          "minutes: EventBridge Scheduler fires to the minute, and an endpoint takes minutes to come "
                          "InService, so a shorter ttl would delete it before it serves. Fix: ttl='5m' or longer, or "
                          "`with run.deploy(...) as ep:` to delete it when the block ends.")
    return seconds


def check_scheduler_role(role: Any) -> str | None:
    if role is not None and (not isinstance(role, str) or not _ROLE.fullmatch(role)):
        raise ConfigError(f"scheduler_role={role!r} is not an IAM role ARN. Fix: scheduler_role='arn:aws:iam::"
                          f"<account>:role/<name>', {ROLE_NEEDS}.")
    return role


def plan_expiry(options: Mapping[str, Any]) -> Expiry | None:
    """``ttl`` and ``scheduler_role`` of a SageMaker deploy, checked."""
    role = check_scheduler_role(options.get("scheduler_role"))
    if options.get("ttl") is None:
        if role is not None:
            raise ConfigError("scheduler_role applies with ttl only (the role deletes the endpoint at its expiry). "
                              "Fix: add ttl='4h', or drop scheduler_role.")
        return None
    return Expiry(parse_ttl(options["ttl"]), role)


def expiry_time(seconds: float, now: datetime | None = None) -> datetime:
    """The expiry in UTC, to the whole second (what the schedule's ``at()`` and the tag say)."""
    return ((now or datetime.now(timezone.utc)) + timedelta(seconds=seconds)).replace(microsecond=0)


def tag_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime(TIME_FORMAT)


def parse_tag_time(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def schedule_name(endpoint: str, step: str) -> str:
    """``<endpoint>.<step>``; a long endpoint name is cut and a hash of it added (schedule names hold 64 characters
    of letters, digits, ``-_.``; endpoint names are letters, digits and hyphens). The same endpoint always gives the
    same names, so another process finds its schedules."""
    name = f"{endpoint}.{step}"
    if len(name) > 64:
        name = f"{endpoint[:64 - len(step) - 10]}-{sha256(endpoint.encode()).hexdigest()[:8]}.{step}"
    return name


def steps(endpoint: str, config: str | None, models: tuple[str, ...]) -> list[tuple[str, str, dict[str, str]]]:
    """(schedule step, SageMaker action, its request) for what a ttl deletes: the endpoint, its models, its config."""
    found = [("endpoint", "deleteEndpoint", {"EndpointName": endpoint})]
    found += [("model" if i == 0 else f"model{i}", "deleteModel", {"ModelName": m}) for i, m in enumerate(models)]
    if config:
        found.append(("config", "deleteEndpointConfig", {"EndpointConfigName": config}))
    return found


def partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def schedule_requests(endpoint: str, config: str | None, models: tuple[str, ...], expires: datetime, role: str,
                      region: str) -> list[dict[str, Any]]:
    """The CreateSchedule (and UpdateSchedule: the same fields) requests that delete an endpoint at ``expires``."""
    requests = []
    for step, action, request in steps(endpoint, config, models):
        when = expires if step == "endpoint" else expires + timedelta(seconds=CLEANUP_DELAY)
        requests.append({
            "Name": schedule_name(endpoint, step), "GroupName": SCHEDULE_GROUP,
            "ScheduleExpression": f"at({when.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%S})",
            "ScheduleExpressionTimezone": "UTC", "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Description": f"sagefinetune: {action} {next(iter(request.values()))} (ttl of endpoint {endpoint})",
            "Target": {"Arn": f"arn:{partition(region)}:scheduler:::aws-sdk:sagemaker:{action}", "RoleArn": role,
                       "Input": json.dumps(request),
                       "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}},
        })
    return requests


def trusts_scheduler(policy: Any) -> bool:
    """Whether an IAM trust policy (GetRole's AssumeRolePolicyDocument: a dict, or URL-encoded JSON) lets
    EventBridge Scheduler assume the role."""
    if isinstance(policy, str):
        try:
            policy = json.loads(unquote(policy))
        except ValueError:
            return False
    statements = policy.get("Statement", []) if isinstance(policy, Mapping) else []
    for statement in [statements] if isinstance(statements, Mapping) else statements:
        actions = statement.get("Action", [])
        services = (statement.get("Principal") or {}).get("Service", []) if isinstance(
            statement.get("Principal"), Mapping) else []
        actions, services = ([x] if isinstance(x, str) else list(x) for x in (actions, services))
        if statement.get("Effect") == "Allow" and set(actions) & {"sts:AssumeRole", "sts:*", "*"} and (
                SCHEDULER_PRINCIPAL in services):
            return True
    return False
