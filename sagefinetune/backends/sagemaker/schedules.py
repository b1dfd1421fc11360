"""EventBridge Scheduler: the one-time schedules that delete an endpoint at its expiry (``ttl=``), the check of the
role they run as, and moving (``ep.extend``) or removing (``ep.delete()``) them.

The requests come from :mod:`sagefinetune.plans.expiry` (pure); this module sends them through boto3 clients it is
given, or through the :class:`~.endpoints.ServingBackend` (:func:`prepare`, :func:`extend`). Every check here runs
before the endpoint is created.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.core.console import say
from sagefinetune.errors import AWSError, ConfigError, CredentialsError, ServingError
from sagefinetune.plans import expiry as plan
from sagefinetune.plans.deploy import KIND_TAG

if TYPE_CHECKING:
    from sagefinetune.backends.sagemaker.endpoints import EndpointRecord, ServingBackend

__all__ = ["prepare", "extend", "scheduler_role", "check_role", "ensure_group", "put", "role_of", "delete"]

NOT_FOUND = ("ResourceNotFoundException",)
DENIED = ("AccessDenied", "AccessDeniedException")


def prepare(backend: ServingBackend, given: str | None) -> str:
    """The scheduler role (given, else $SFT_SCHEDULER_ROLE), checked with IAM, and the schedule group: all before
    anything is created."""
    role = scheduler_role(given)
    note = check_role(backend.client("iam"), role)
    if note:
        say(note, backend.progress)
    ensure_group(backend.client("scheduler"))
    return role


def extend(backend: ServingBackend, endpoint: EndpointRecord, ttl: Any, given_role: str | None = None) -> datetime:
    """Move the endpoint's expiry to ``ttl`` from now (its schedules and its tag); return the new expiry. An endpoint
    without schedules gets them now, as ``given_role``, else the role its schedules already run as, else
    $SFT_SCHEDULER_ROLE."""
    seconds = plan.parse_ttl(ttl)
    plan.check_scheduler_role(given_role)
    if not endpoint.owned:
        raise ConfigError(f"endpoint {endpoint.name} was not made by sagefinetune; a ttl would delete its config and "
                          "model, which other endpoints may share. Fix: delete it yourself when it is no longer needed.")
    found = backend.describe(endpoint.name)
    if found is None:
        raise ServingError(f"endpoint {endpoint.name} no longer exists in {endpoint.region} (deleted, or its ttl "
                           "ended). Fix: deploy the model again.", name=endpoint.name, operation="DescribeEndpoint")
    scheduler = backend.client("scheduler")
    role = (None if given_role else role_of(scheduler, endpoint.name)) or prepare(backend, given_role)
    expires = plan.expiry_time(seconds)
    put(scheduler, plan.schedule_requests(endpoint.name, endpoint.config_name, endpoint.model_names, expires, role,
                                          endpoint.region), update=True)
    with aws_errors("AddTags"):
        backend.client("sagemaker").add_tags(ResourceArn=found["EndpointArn"], Tags=[
            {"Key": plan.EXPIRES_TAG, "Value": plan.tag_time(expires)}])
    say(f"{endpoint.name} now expires at {expires:%Y-%m-%d %H:%M:%S} UTC ({plan.human(seconds)} from now)",
        backend.progress)
    return expires


def scheduler_role(role: str | None) -> str:
    """``scheduler_role=``, else ``$SFT_SCHEDULER_ROLE``; an error that says what the role needs when neither is set."""
    found = role or os.environ.get(plan.SCHEDULER_ROLE_ENV)
    if not found:
        raise CredentialsError(f"ttl needs {plan.ROLE_NEEDS}; none was given. Fix: deploy(..., ttl=..., scheduler_role="
                               f"'arn:aws:iam::<account>:role/<name>'), or set {plan.SCHEDULER_ROLE_ENV} (see 'Endpoints "
                               "that end' in the SageMaker endpoints tutorial for the policies).")
    return plan.check_scheduler_role(found) or found


def check_role(iam: Any, role: str) -> str | None:
    """IAM GetRole: the role exists and trusts scheduler.amazonaws.com. Returns a note instead when this identity may
    not read IAM (the check is then skipped; a role that does not work makes the schedule fail at the expiry)."""
    try:
        with aws_errors("GetRole"):
            found = iam.get_role(RoleName=role.rsplit("/", 1)[-1])["Role"]
    except AWSError as exc:
        if exc.code == "NoSuchEntity":
            raise CredentialsError(f"scheduler_role {role} does not exist in this account. Fix: create {plan.ROLE_NEEDS}, "
                                   "and pass its ARN as scheduler_role=.") from exc
        if exc.code in DENIED:
            return f"could not read scheduler_role {role} (iam:GetRole denied): its trust policy is not checked"
        raise
    if not plan.trusts_scheduler(found.get("AssumeRolePolicyDocument")):
        raise CredentialsError(f"scheduler_role {role} does not let EventBridge Scheduler assume it: its trust policy "
                               f"has no Allow of sts:AssumeRole for the service {plan.SCHEDULER_PRINCIPAL}. Fix: add that "
                               f"statement to the role's trust policy, or use {plan.ROLE_NEEDS}.")
    return None


def ensure_group(scheduler: Any) -> None:
    """The schedule group ``sagefinetune`` (created, tagged, on first use)."""
    try:
        with aws_errors("GetScheduleGroup"):
            scheduler.get_schedule_group(Name=plan.SCHEDULE_GROUP)
        return
    except AWSError as exc:
        if exc.code not in NOT_FOUND:
            raise
    try:
        with aws_errors("CreateScheduleGroup"):
            scheduler.create_schedule_group(Name=plan.SCHEDULE_GROUP, Tags=[{"Key": KIND_TAG, "Value": "schedules"}])
    except AWSError as exc:
        if exc.code != "ConflictException":  # another process made it meanwhile
            raise


def put(scheduler: Any, requests: list[dict[str, Any]], *, update: bool = False) -> None:
    """Create the schedules; ``update=True``: move existing ones (UpdateSchedule replaces every field, so the whole
    request is sent again), creating any that is missing."""
    for request in requests:
        if update:
            try:
                with aws_errors("UpdateSchedule"):
                    scheduler.update_schedule(**request)
                continue
            except AWSError as exc:
                if exc.code not in NOT_FOUND:
                    raise
        with aws_errors("CreateSchedule"):
            scheduler.create_schedule(**request)


def role_of(scheduler: Any, endpoint: str) -> str | None:
    """The role an endpoint's deleting schedule runs as, or None when it has none."""
    try:
        with aws_errors("GetSchedule"):
            found = scheduler.get_schedule(Name=plan.schedule_name(endpoint, "endpoint"), GroupName=plan.SCHEDULE_GROUP)
    except AWSError as exc:
        if exc.code in NOT_FOUND:
            return None
        raise
    return str(found["Target"]["RoleArn"])


def delete(scheduler: Any, endpoint: str, config: str | None, models: tuple[str, ...]) -> list[str]:
    """Delete an endpoint's schedules (those already gone are skipped); return what was removed."""
    removed = []
    for step, _, _ in plan.steps(endpoint, config, models):
        name = plan.schedule_name(endpoint, step)
        try:
            with aws_errors("DeleteSchedule"):
                scheduler.delete_schedule(Name=name, GroupName=plan.SCHEDULE_GROUP)
        except AWSError as exc:
            if exc.code in NOT_FOUND:
                continue
            raise
        removed.append(f"schedule {plan.SCHEDULE_GROUP}/{name}")
    return removed
