"""Endpoints that end (``ttl=``: EventBridge Scheduler) and endpoints that scale (``autoscale=``: Application Auto
Scaling), against the moto server the tests start: the requests as sent, what exists afterwards, and every bad input
refused before anything is created."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import aws
import pytest
from test_sagemaker_endpoints import remaining, sent, sm_run, tags_of

import sagefinetune as sft
from sagefinetune.deploy import deploy_run
from sagefinetune.plans import expiry, scaling

TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def make_role(moto, name: str = "sft-scheduler", trust: dict | None = None) -> str:
    iam = moto.session().client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust or TRUST),
                          Path="/service-role/")["Role"]["Arn"]
    moto.sent.clear()
    return arn


def schedules(moto) -> dict[str, dict]:
    client = moto.session().client("scheduler")
    try:
        found = client.list_schedules(GroupName=expiry.SCHEDULE_GROUP)["Schedules"]
    except client.exceptions.ResourceNotFoundException:
        return {}
    return {s["Name"]: client.get_schedule(Name=s["Name"], GroupName=expiry.SCHEDULE_GROUP) for s in found}


def at_time(expression: str) -> datetime:
    found = re.fullmatch(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)", expression)
    assert found, expression
    return datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)


def scaling_state(moto) -> tuple[list[dict], list[dict]]:
    client = moto.session().client("application-autoscaling")
    return (client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"],
            client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"])


# ---- endpoints that end -----------------------------------------------------------------------------------------
def test_a_ttl_schedules_the_deletion_of_endpoint_config_and_model(moto, capsys):
    role = make_role(moto)
    before = datetime.now(timezone.utc)
    ep = deploy_run(sm_run(moto), ttl="4h", scheduler_role=role)
    order = list(moto.sent)  # each operation where it was first called
    assert order.index("GetRole") < order.index("CreateScheduleGroup") < order.index("CreateModel")  # checked first
    assert abs(ep.expires_at - (before + timedelta(hours=4))).total_seconds() < 60
    assert tags_of(sent(moto, "CreateEndpoint"))[expiry.EXPIRES_TAG] == ep.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expiry.EXPIRES_TAG not in tags_of(sent(moto, "CreateModel"))  # only the endpoint carries the expiry

    found = schedules(moto)
    assert sorted(found) == sorted(f"{ep.name}.{step}" for step in ("endpoint", "config", "model"))
    for step, action, key in (("endpoint", "deleteEndpoint", "EndpointName"), ("model", "deleteModel", "ModelName"),
                              ("config", "deleteEndpointConfig", "EndpointConfigName")):
        schedule = found[f"{ep.name}.{step}"]
        assert schedule["Target"]["Arn"] == f"arn:aws:scheduler:::aws-sdk:sagemaker:{action}"
        assert json.loads(schedule["Target"]["Input"]) == {key: ep.name} and schedule["Target"]["RoleArn"] == role
        assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["ActionAfterCompletion"] == "DELETE"
        assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
        delay = timedelta(0) if step == "endpoint" else timedelta(seconds=expiry.CLEANUP_DELAY)
        assert at_time(schedule["ScheduleExpression"]) == ep.expires_at + delay
    assert f"{ep.name} expires at {ep.expires_at:%Y-%m-%d %H:%M:%S} UTC" in capsys.readouterr().err
    assert "until" in repr(ep)

    removed = ep.delete()
    assert removed[:3] == [f"endpoint {ep.name}", f"model {ep.name}", f"endpoint config {ep.name}"]
    assert sorted(removed[3:]) == sorted(f"schedule sagefinetune/{ep.name}.{s}" for s in ("endpoint", "config", "model"))
    assert schedules(moto) == {} and remaining(moto) == {"endpoints": [], "configs": [], "models": []}


def test_extend_moves_the_schedules_and_the_tag_and_another_process_sees_it(moto, monkeypatch):
    monkeypatch.setenv(expiry.SCHEDULER_ROLE_ENV, make_role(moto))
    ep = deploy_run(sm_run(moto), ttl="30m", progress=False)
    first, created = ep.expires_at, len(moto.sent["CreateSchedule"])
    new = ep.extend(ttl="3h")
    assert new == ep.expires_at and abs(new - first - timedelta(minutes=150)).total_seconds() < 60
    assert len(moto.sent["UpdateSchedule"]) == 3 and len(moto.sent["CreateSchedule"]) == created  # moved, not made
    found = schedules(moto)
    assert at_time(found[f"{ep.name}.endpoint"]["ScheduleExpression"]) == new
    assert at_time(found[f"{ep.name}.config"]["ScheduleExpression"]) == new + timedelta(seconds=expiry.CLEANUP_DELAY)

    again = sft.Endpoint.attach(ep.name, boto_session=moto.session())  # as another process finds it
    assert again.expires_at == new
    table = sft.Endpoint.list(boto_session=moto.session())
    assert table.expires_at[0] == new and table.autoscale[0] is None
    again.extend(ttl="1d")  # the role comes from the schedules it already has
    assert at_time(schedules(moto)[f"{ep.name}.endpoint"]["ScheduleExpression"]) == again.expires_at
    assert len(again.delete()) == 6 and schedules(moto) == {}
    ep.deleted = True


def test_extend_gives_an_endpoint_without_a_ttl_its_schedules(moto, monkeypatch):
    monkeypatch.delenv(expiry.SCHEDULER_ROLE_ENV, raising=False)
    ep = deploy_run(sm_run(moto), progress=False)
    assert ep.expires_at is None and "CreateSchedule" not in moto.calls() and "GetRole" not in moto.calls()
    with pytest.raises(sft.CredentialsError, match="sagemaker:DeleteEndpoint.*Fix:"):
        ep.extend(ttl="2h")
    ep.extend(ttl="2h", scheduler_role=make_role(moto))
    assert len(schedules(moto)) == 3 and ep.expires_at is not None
    with pytest.raises(sft.ConfigError, match="ttl='1m' is 60s; a SageMaker endpoint needs at least 5 minutes"):
        ep.extend(ttl="1m")
    ep.delete()
    assert schedules(moto) == {}


@pytest.mark.parametrize("role, message", [
    (None, r"ttl needs a role that EventBridge Scheduler can assume \(trust policy: Principal "
           r"\{\"Service\": \"scheduler.amazonaws.com\"\}.*sagemaker:DeleteEndpoint, sagemaker:DeleteEndpointConfig "
           r"and sagemaker:DeleteModel.*Fix: .*scheduler_role="),
    ("arn:aws:iam::123456789012:role/missing", "scheduler_role .*role/missing does not exist in this account"),
    ("lambda", "does not let EventBridge Scheduler assume it.*scheduler.amazonaws.com"),
])
def test_no_usable_scheduler_role_fails_before_any_endpoint_exists(moto, monkeypatch, role, message):
    monkeypatch.delenv(expiry.SCHEDULER_ROLE_ENV, raising=False)
    if role == "lambda":
        trust = json.loads(json.dumps(TRUST))
        trust["Statement"][0]["Principal"]["Service"] = "lambda.amazonaws.com"
        role = make_role(moto, "sft-lambda", trust)
    with pytest.raises(sft.CredentialsError, match=message) as err:
        deploy_run(sm_run(moto), ttl="4h", scheduler_role=role)
    assert "Fix:" in str(err.value)
    assert not [c for c in moto.calls() if c.startswith("Create")] and remaining(moto)["endpoints"] == []


def test_a_failed_schedule_deletes_what_was_made(moto, monkeypatch):
    from sagefinetune.backends.sagemaker import schedules as backend_schedules
    from sagefinetune.errors import AWSError

    made = []

    def fail_after_one(client, requests, update=False):
        client.create_schedule(**requests[0])
        made.append(requests[0]["Name"])
        raise AWSError("CreateSchedule failed: ThrottlingException", operation="CreateSchedule", code="Throttling")

    monkeypatch.setattr(backend_schedules, "put", fail_after_one)
    with pytest.raises(sft.AWSError, match="CreateSchedule failed"):
        deploy_run(sm_run(moto), ttl="4h", scheduler_role=make_role(moto), progress=False)
    assert made and schedules(moto) == {}
    assert remaining(moto) == {"endpoints": [], "configs": [], "models": []}


def test_a_failed_endpoint_with_a_ttl_loses_its_schedules_too(moto):
    from moto.sagemaker.models import sagemaker_backends

    ep = deploy_run(sm_run(moto), ttl="1h", scheduler_role=make_role(moto), wait=False, progress=False)
    assert len(schedules(moto)) == 3
    sagemaker_backends[aws.ACCOUNT][aws.REGION].endpoints[ep.name].endpoint_status = "Failed"
    with pytest.raises(sft.ServingError, match="failed"):
        ep.wait()
    assert schedules(moto) == {} and remaining(moto)["endpoints"] == []


def test_an_expired_endpoint_says_so(moto):
    ep = deploy_run(sm_run(moto), ttl="5m", scheduler_role=make_role(moto), progress=False)
    ep.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)  # as it is once the scheduler has run
    with pytest.raises(sft.ConfigError, match=f"endpoint {ep.name} expired at .* UTC \\(its ttl\\).*Fix:"):
        ep.predict("still there?")
    ep.delete()


@pytest.mark.parametrize("ttl, message", [
    (0, "ttl=0 must be a duration longer than 0"), (-60, "ttl=-60 must be a duration longer than 0"),
    ("2m", "ttl='2m' is 120s; a SageMaker endpoint needs at least 5 minutes"), (299, "ttl=299 is 299s"),
    ("soon", "ttl='soon' is not a duration"), (True, "ttl=True is not a duration"),
    (float("nan"), "must be a duration longer than 0"), ("4 hours", "is not a duration"),
])
def test_bad_ttls_fail_before_any_aws_call(moto, ttl, message):
    with pytest.raises(sft.ConfigError, match=message) as err:
        deploy_run(sm_run(moto), ttl=ttl, scheduler_role=aws.ROLE)
    assert "Fix:" in str(err.value) and moto.calls() == []


def test_ttl_text_and_schedule_names():
    assert [expiry.parse_ttl(t) for t in ("30m", "4h", "1d", "1h30m", 600, 900.5)] == [
        1800, 14400, 86400, 5400, 600, 900.5]
    assert expiry.parse_ttl("10s", minimum=0) == 10 and expiry.human(93600) == "1d2h"
    long = "x" * 63
    names = {expiry.schedule_name(long, s) for s in ("endpoint", "config", "model")}
    assert len(names) == 3 and all(len(n) <= 64 and re.fullmatch(r"[\w.-]+", n) for n in names)
    assert expiry.schedule_name(long, "model") == expiry.schedule_name(long, "model")  # another process finds it
    assert expiry.trusts_scheduler("%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22"
                                   "Service%22%3A%5B%22scheduler.amazonaws.com%22%5D%7D%2C%22Action%22%3A%22sts%3A"
                                   "AssumeRole%22%7D%5D%7D")  # URL-encoded, as the IAM API sends it
    assert not expiry.trusts_scheduler({"Statement": [{"Effect": "Deny", "Principal": {"Service":
                                        "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    request = expiry.schedule_requests("ep", "ep", ("ep",), datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                                       aws.ROLE, "cn-north-1")[0]
    assert request["ScheduleExpression"] == "at(2026-01-02T03:04:05)"
    assert request["Target"]["Arn"] == "arn:aws-cn:scheduler:::aws-sdk:sagemaker:deleteEndpoint"


# ---- endpoints that scale ---------------------------------------------------------------------------------------
def test_autoscale_registers_the_variant_with_a_target_tracking_policy(moto, capsys):
    ep = deploy_run(sm_run(moto), instance="ml.g4dn.xlarge", autoscale=(2, 4))
    assert sent(moto, "CreateEndpointConfig")["ProductionVariants"][0]["InitialInstanceCount"] == 2  # starts at min
    targets, policies = scaling_state(moto)
    resource = f"endpoint/{ep.name}/variant/AllTraffic"
    assert [(t["ResourceId"], t["ScalableDimension"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        (resource, "sagemaker:variant:DesiredInstanceCount", 2, 4)]
    assert [(p["PolicyName"], p["PolicyType"], p["ResourceId"]) for p in policies] == [
        (scaling.POLICY_NAME, "TargetTrackingScaling", resource)]
    config = policies[0]["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"] == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert config["TargetValue"] == scaling.DEFAULT_TARGET_INVOCATIONS == 2600
    assert (config["ScaleOutCooldown"], config["ScaleInCooldown"]) == (60, 300)
    assert list(moto.sent).index("RegisterScalableTarget") > list(moto.sent).index("DescribeEndpoint")  # InService
    assert ep.autoscale == (2, 4) and f"{ep.name} scales between 2 and 4 instances" in capsys.readouterr().err

    again = sft.Endpoint.attach(ep.name, boto_session=moto.session())
    assert again.autoscale == (2, 4) and again.expires_at is None
    assert sft.Endpoint.list(boto_session=moto.session()).autoscale[0] == (2, 4)
    removed = ep.delete()
    assert removed[:2] == [f"scaling policy {resource} {scaling.POLICY_NAME}", f"scalable target {resource}"]
    assert removed[2] == f"endpoint {ep.name}" and scaling_state(moto) == ([], [])
    assert list(moto.sent).index("DeregisterScalableTarget") < list(moto.sent).index("DeleteEndpoint")
    assert remaining(moto) == {"endpoints": [], "configs": [], "models": []}


def test_autoscale_with_a_target_and_a_ttl(moto):
    role = make_role(moto)
    with deploy_run(sm_run(moto), autoscale=(1, 3), instance_count=2, target_invocations=600, ttl="2h",
                    scheduler_role=role, progress=False) as ep:
        assert sent(moto, "CreateEndpointConfig")["ProductionVariants"][0]["InitialInstanceCount"] == 2
        policy = scaling_state(moto)[1][0]["TargetTrackingScalingPolicyConfiguration"]
        assert policy["TargetValue"] == 600.0 and len(schedules(moto)) == 3
        assert ep.autoscale == (1, 3) and ep.expires_at is not None
    assert scaling_state(moto) == ([], []) and schedules(moto) == {}


def test_a_failed_registration_deletes_the_endpoint(moto, monkeypatch):
    from sagefinetune.backends.sagemaker import autoscaling
    from sagefinetune.errors import AWSError

    def refuse(client, endpoint, autoscale):
        client.register_scalable_target(**autoscale.register_request(endpoint))
        raise AWSError("PutScalingPolicy failed: LimitExceededException", operation="PutScalingPolicy")

    monkeypatch.setattr(autoscaling, "register", refuse)
    with pytest.raises(sft.AWSError, match="PutScalingPolicy failed"):
        deploy_run(sm_run(moto), autoscale=(1, 2), progress=False)
    assert scaling_state(moto) == ([], []) and remaining(moto) == {"endpoints": [], "configs": [], "models": []}


@pytest.mark.parametrize("options, message", [
    ({"serverless": True, "autoscale": (1, 2)}, "applies to real-time endpoints; a serverless endpoint scales by itself"),
    ({"autoscale": (0, 2)}, r"min must be at least 1; .*inference components\). Fix: autoscale=\(1, 2\)"),
    ({"autoscale": (3, 2)}, r"min 3 is more than max 2. Fix: autoscale=\(2, 3\)"),
    ({"autoscale": (1, 101)}, "max 101 is more than 100 instances"),
    ({"autoscale": (1, 4, 600)}, r"takes \(min, max\) only.*Fix: autoscale=\(1, 4\), target_invocations=600"),
    ({"autoscale": 4}, r"must be \(min instances, max instances\)"),
    ({"autoscale": (1.0, 2)}, "two whole numbers"),
    ({"autoscale": (1, 2), "instance_count": 3}, "instance_count=3 is outside autoscale=\\(1, 2\\)"),
    ({"autoscale": (1, 2), "wait": False}, "autoscale needs the endpoint InService"),
    ({"autoscale": (1, 2), "target_invocations": 0}, "target_invocations must be a finite number > 0"),
    ({"target_invocations": 600}, "target_invocations=600 applies with autoscale only"),
    ({"scheduler_role": aws.ROLE}, "scheduler_role applies with ttl only"),
    ({"ttl": "1h", "scheduler_role": "my-role"}, "scheduler_role='my-role' is not an IAM role ARN"),
])
def test_bad_scaling_inputs_fail_before_any_aws_call(moto, options, message):
    with pytest.raises(sft.ConfigError, match=message) as err:
        deploy_run(sm_run(moto), **options)
    assert "Fix:" in str(err.value) and moto.calls() == []


def test_the_plan_prints_the_expiry_and_the_scaling_range():
    from sagefinetune.plans.deploy import model_ref, plan_deploy

    spec = plan_deploy(model_ref("me/imdb-minilm"), region="us-east-1", instance="ml.g4dn.xlarge", ttl="4h",
                       autoscale=(1, 4), scheduler_role=aws.ROLE)
    text = str(spec)
    assert "  scaling  1..4 instances, target 2600 invocations per instance per minute" in text
    assert "$0.736/h to $2.944/h" in text
    assert re.search(r"  expires  4h after it is created \(about \d{4}-\d\d-\d\d \d\d:\d\d UTC; \$2.94 for 1 "
                     r"instance\(s\) over the ttl\): EventBridge Scheduler deletes endpoint, config and model", text)
    assert spec.expiry == expiry.Expiry(14400, aws.ROLE) and spec.autoscale == scaling.Autoscale(1, 4)
    plain = str(plan_deploy(model_ref("me/imdb-minilm"), region="us-east-1"))
    assert "expires" not in plain and "scaling" not in plain
