"""SageMaker real-time and serverless endpoints: create, call, find and delete them.

With :mod:`.sagemaker` and :mod:`.sagemaker_batch` the only modules that import the sagemaker SDK (inside the
functions that need it). Order of work in :meth:`ServingBackend.deploy`, so that nothing costs money before every
check passed: options checked (pure, :mod:`sagefinetune.plans.deploy`) -> credentials, region, role -> the model
data (an artifact is checked to exist; a folder is packed and uploaded once per content) -> Model, EndpointConfig,
Endpoint, all tagged ``sagefinetune:*`` -> with ``ttl=``, the schedules that delete them
(:mod:`.schedules`, whose role is checked before anything is created) -> with ``autoscale=``, once InService, the
scalable target and its policy (:mod:`.autoscaling`). If a step fails, what was already created is deleted again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker import autoscaling, schedules
from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.backends.sagemaker.model_archive import HANDLER, upload_folder
from sagefinetune.backends.sagemaker.training import ROLE_ENV, SageMakerBackend
from sagefinetune.core.console import say
from sagefinetune.errors import AWSError, CredentialsError, ServingError
from sagefinetune.facts.hosting import HOSTING
from sagefinetune.plans import deploy as deploy_plan
from sagefinetune.plans import expiry as expiry_plan
from sagefinetune.plans.deploy import KIND_TAG, DeploySpec, ModelRef

if TYPE_CHECKING:
    import pandas as pd


def runtime_url(region: str, name: str) -> str:
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://runtime.sagemaker.{region}.{domain}/endpoints/{name}/invocations"


@dataclass(frozen=True)
class EndpointRecord:
    """A SageMaker real-time or serverless endpoint as the backend found or made it.

    Attributes:
        kind: ``"realtime"`` or ``"serverless"``.
        config_name, model_names: the endpoint config and the models behind it.
        owned: made by sagefinetune (tagged); an endpoint that is not has only itself deleted, not its config and model.
        price_per_hour: USD per instance-hour (None for serverless, which bills per request).
        expires_at: when EventBridge Scheduler deletes it (``ttl=``; from its ``sagefinetune:expires-at`` tag).
        autoscale: (min, max) instances of its Application Auto Scaling target, None when it does not autoscale.
    """

    name: str
    kind: str
    region: str
    config_name: str | None
    model_names: tuple[str, ...]
    owned: bool = True
    instance: str | None = None
    instance_count: int = 1
    memory_mb: int | None = None
    max_concurrency: int | None = None
    price_per_hour: float | None = None
    status: str | None = None
    expires_at: datetime | None = None
    autoscale: tuple[int, int] | None = None

    @property
    def url(self) -> str:
        return runtime_url(self.region, self.name)


class ServingBackend:
    """Creates, calls, finds and deletes SageMaker endpoints through boto3 and sagemaker-core.

    Args:
        boto_session: a ``boto3.Session`` (default: a new one, from the usual credential chain).
        region: overrides the session's region.
        progress: print what is created and what it costs (to stderr).
        poll_seconds: how often waiting asks for the endpoint's status.
    """

    def __init__(self, boto_session: Any = None, region: str | None = None, *, progress: bool = True,
                 poll_seconds: float = 15.0) -> None:
        self.aws = SageMakerBackend(boto_session, region=region)
        self.progress = progress
        self.poll_seconds = poll_seconds

    @property
    def region(self) -> str | None:
        return self.aws.region

    def client(self, name: str) -> Any:
        return self.aws.client(name)

    # ---- deploy ---------------------------------------------------------------------------------------------
    def deploy(self, model: ModelRef, options: Mapping[str, Any], *, run_role: str | None = None,
               artifact_bucket: str | None = None) -> EndpointRecord:
        """Check everything, then create Model, EndpointConfig and Endpoint (and wait, unless ``wait=False``)."""
        if self.region is None:
            raise CredentialsError("no AWS region. Fix: export AWS_DEFAULT_REGION=us-east-1, or deploy(..., region=...).")
        spec = deploy_plan.plan_deploy(model, **{**options, "region": self.region})
        self.aws.check_credentials()
        role = self.resolve_role(spec.role, run_role)
        scheduler_role = schedules.prepare(self, spec.expiry.scheduler_role) if spec.expiry else None
        model_data = self.model_data(spec, artifact_bucket)
        where = (f"serverless {spec.memory_mb} MB" if spec.kind == "serverless"
                 else f"{spec.instance_count} x {spec.instance}")
        say(f"creating {spec.kind} endpoint {spec.name} ({where}) in {spec.region}: {spec.cost_line}. "
             "Delete it with ep.delete(); sagefinetune.Endpoint.list() finds it later.", self.progress)
        endpoint = self.create(spec, role, model_data, scheduler_role)
        if options.get("wait", True):
            endpoint = replace(endpoint, status=self.wait_in_service(endpoint, options.get("timeout")))
        return autoscaling.start(self, endpoint, spec.autoscale) if spec.autoscale else endpoint

    def resolve_role(self, role: str | None, run_role: str | None = None) -> str:
        """The role argument, else the training job's role, else $SAGEMAKER_ROLE."""
        found = role or run_role or os.environ.get(ROLE_ENV)
        if not found:
            raise CredentialsError("no SageMaker execution role for the model. Fix: deploy(..., role='arn:aws:iam::"
                                   f"<account>:role/<name>'), or set {ROLE_ENV}.")
        return deploy_plan.check_role(found) or found

    def model_data(self, spec: DeploySpec, artifact_bucket: str | None = None) -> str | None:
        """The model's S3 URI: an artifact (checked to exist), a folder (packed, uploaded once), or None (Hub)."""
        model = spec.model
        if model.kind == "hub":
            return None
        if model.kind == "artifact":
            self.check_artifact(model.location)
            return model.location
        bucket = spec.bucket or artifact_bucket or self.default_bucket()
        self.aws.check_bucket(bucket)
        add_handler = not (Path(model.location) / "code" / "inference.py").is_file() and HANDLER.is_file()
        return upload_folder(self.client("s3"), Path(model.location), bucket, spec.prefix, add_handler=add_handler,
                             progress=self.progress)

    def default_bucket(self) -> str:
        from sagemaker.core.helper.session_helper import Session

        return self.aws._bucket(None, self.aws._sagemaker_session(Session, None))

    def check_artifact(self, uri: str) -> None:
        from botocore.exceptions import ClientError

        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            self.client("s3").head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            raise AWSError(f"the model archive {uri} cannot be read ({code}: it does not exist, or this account may not "
                           "read it). Fix: wait for the training job to finish (run.wait()), or check the URI.",
                           operation="HeadObject", code=code) from exc

    def create_model(self, spec: DeploySpec, role: str, model_data: str | None) -> None:
        """The SageMaker Model: the inference image, the model data (none for a Hub id), the environment, the tags."""
        from sagemaker.core.resources import Model
        from sagemaker.core.shapes import ContainerDefinition

        container = {"image": spec.image_uri, "environment": dict(spec.environment)}
        if model_data:
            container["model_data_url"] = model_data
        with aws_errors("CreateModel"):
            Model.create(model_name=spec.name, primary_container=ContainerDefinition(**container),
                         execution_role_arn=role, tags=spec.core_tags(),
                         session=self.aws.boto, region=self.region)

    def create(self, spec: DeploySpec, role: str, model_data: str | None,
               scheduler_role: str | None = None) -> EndpointRecord:
        """Model, EndpointConfig, Endpoint (and its schedules); if one fails, the ones already made are deleted again."""
        from sagemaker.core.resources import Endpoint as CoreEndpoint

        made: list[str] = []
        expires = expiry_plan.expiry_time(spec.expiry.ttl_seconds) if spec.expiry else None
        expiry_tag = [{"key": expiry_plan.EXPIRES_TAG, "value": expiry_plan.tag_time(expires)}] if expires else []
        try:
            self.create_model(spec, role, model_data)
            made.append("model")
            # boto3, not EndpointConfig.create: sagemaker-core 2.27 sends ServerlessConfig.MemorySizeInMB as
            # "MemorySizeInMb", which the API refuses
            with aws_errors("CreateEndpointConfig"):
                self.client("sagemaker").create_endpoint_config(EndpointConfigName=spec.name,
                                                                ProductionVariants=[spec.variant()], Tags=spec.tag_list())
            made.append("config")
            with aws_errors("CreateEndpoint"):
                CoreEndpoint.create(endpoint_name=spec.name, endpoint_config_name=spec.name,
                                    tags=spec.core_tags() + expiry_tag, session=self.aws.boto,
                                    region=self.region)
            made.append("endpoint")
            if expires and scheduler_role:
                schedules.put(self.client("scheduler"), expiry_plan.schedule_requests(
                    spec.name, spec.name, (spec.name,), expires, scheduler_role, spec.region))
        except BaseException:
            self.delete_resources(spec.name if "endpoint" in made else None, spec.name if "config" in made else None,
                                  (spec.name,) if made else ())
            if expires and "endpoint" in made:
                schedules.delete(self.client("scheduler"), spec.name, spec.name, (spec.name,))
            raise
        if expires:
            say(f"{spec.name} expires at {expires:%Y-%m-%d %H:%M:%S} UTC: EventBridge Scheduler deletes it then; "
                "ep.extend(ttl=...) moves that", self.progress)
        return EndpointRecord(spec.name, kind=spec.kind, region=spec.region, config_name=spec.name,
                              model_names=(spec.name,), instance=spec.instance, instance_count=spec.instance_count,
                              memory_mb=spec.memory_mb, max_concurrency=spec.max_concurrency,
                              price_per_hour=spec.hourly_cost if spec.kind == "realtime" else None, status="Creating",
                              expires_at=expires)

    def status(self, name: str) -> str:
        """The endpoint's status now (``Creating``, ``InService``, ``Failed``, ...)."""
        with aws_errors("DescribeEndpoint"):
            return str(self.client("sagemaker").describe_endpoint(EndpointName=name)["EndpointStatus"])

    def wait_in_service(self, endpoint: EndpointRecord, timeout: float | None = None) -> str:
        """Poll until InService; a Failed endpoint is deleted (with its config and model) and raises ServingError."""
        started, last = time.time(), ""
        while True:
            with aws_errors("DescribeEndpoint"):
                d = self.client("sagemaker").describe_endpoint(EndpointName=endpoint.name)
            status = str(d["EndpointStatus"])
            if status != last:
                say(f"{endpoint.name}: {status}", self.progress)
                last = status
            if status == "InService":
                return status
            if status in ("Failed", "OutOfService"):
                reason = d.get("FailureReason") or status
                for item in self.delete_owned(endpoint):
                    print(f"[sagefinetune] deleted {item}")
                raise ServingError(f"endpoint {endpoint.name} {status.lower()}: {reason}. It was deleted (endpoint, "
                                   f"config and model). Fix: read CloudWatch /aws/sagemaker/Endpoints/{endpoint.name}.",
                                   name=endpoint.name, reason=reason, operation="CreateEndpoint")
            if timeout is not None and time.time() - started > timeout:
                raise ServingError(f"endpoint {endpoint.name} is still {status} after {timeout:.0f}s; it goes on being "
                                   f"created, and billed once in service. Fix: sagefinetune.Endpoint.attach("
                                   f"{endpoint.name!r}).wait() later, or .delete() it.", name=endpoint.name,
                                   reason=status, operation="DescribeEndpoint")
            time.sleep(self.poll_seconds)

    # ---- call, delete, attach, list -----------------------------------------------------------------------------
    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            with aws_errors(f"InvokeEndpoint {name}"):
                try:
                    answer = self.client("sagemaker-runtime").invoke_endpoint(
                        EndpointName=name, Body=body, ContentType=content_type, Accept=accept)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") == "ModelError":
                        raise model_error(name, exc) from exc
                    raise
        except AWSError as exc:
            if exc.code in ("ValidationError", "ValidationException") and "not found" in str(exc).lower():
                raise AWSError(f"{exc} Fix: check the name and the region; sagefinetune.Endpoint.list() shows the "
                               "endpoints sagefinetune made.", operation=exc.operation, code=exc.code,
                               request_id=exc.request_id) from exc.__cause__
            raise
        return bytes(answer["Body"].read())

    def delete_resources(self, endpoint: str | None, config: str | None, models: tuple[str, ...]) -> list[str]:
        """Delete what exists of the three (endpoint first, then models, then the config); return what was removed."""
        sm = self.client("sagemaker")
        steps = [("endpoint", "DeleteEndpoint", sm.delete_endpoint, {"EndpointName": endpoint})] if endpoint else []
        steps += [("model", "DeleteModel", sm.delete_model, {"ModelName": m}) for m in models]
        if config:
            steps.append(("endpoint config", "DeleteEndpointConfig", sm.delete_endpoint_config,
                          {"EndpointConfigName": config}))
        removed = []
        for what, operation, call, args in steps:
            if _delete_if_there(operation, call, args):
                removed.append(f"{what} {next(iter(args.values()))}")
        return removed

    def delete_owned(self, endpoint: EndpointRecord) -> list[str]:
        """Delete the endpoint, and its config and models when sagefinetune made them, its autoscaling first and its
        schedules last (they stay a safety net until the endpoint is gone); return what was removed."""
        removed = autoscaling.deregister(self.client("application-autoscaling"), endpoint.name) if endpoint.autoscale else []
        if not endpoint.owned:
            return removed + self.delete_resources(endpoint.name, None, ())
        removed += self.delete_resources(endpoint.name, endpoint.config_name, endpoint.model_names)
        if endpoint.expires_at:
            removed += schedules.delete(self.client("scheduler"), endpoint.name, endpoint.config_name,
                                        endpoint.model_names)
        return removed

    def extend(self, endpoint: EndpointRecord, ttl: Any, scheduler_role: str | None = None) -> datetime:
        """Move the endpoint's expiry to ``ttl`` from now; the new expiry (:func:`.schedules.extend`)."""
        return schedules.extend(self, endpoint, ttl, scheduler_role)

    def attach(self, name: str) -> EndpointRecord:
        deploy_plan.check_name(name)
        sm = self.client("sagemaker")
        try:
            with aws_errors("DescribeEndpoint"):
                d = sm.describe_endpoint(EndpointName=name)
        except AWSError as exc:
            if exc.code not in ("ValidationError", "ValidationException"):
                raise
            raise AWSError(f"no SageMaker endpoint named {name!r} in {self.region}. Fix: check the name and the region "
                           "(region=... or AWS_DEFAULT_REGION); sagefinetune.Endpoint.list() shows those sagefinetune "
                           "made.", operation="DescribeEndpoint", code=exc.code, request_id=exc.request_id) from exc
        config, tags = self.endpoint_config(d.get("EndpointConfigName")), self.tags(d["EndpointArn"])
        record = self.record(d, config, tags)
        if record.kind == "realtime":
            scaling = autoscaling.ranges(self.client("application-autoscaling"), [name]).get(name)
            record = replace(record, autoscale=scaling)
        return record

    def list(self) -> pd.DataFrame:
        """Every endpoint in the region that carries sagefinetune's tags, oldest first, with its age, cost so far,
        expiry and autoscaling range (:mod:`.endpoint_list`)."""
        from sagefinetune.backends.sagemaker.endpoint_list import list_endpoints

        return list_endpoints(self)

    def describe(self, name: str) -> dict[str, Any] | None:
        """DescribeEndpoint, or None when it was deleted meanwhile."""
        try:
            with aws_errors("DescribeEndpoint"):
                return dict(self.client("sagemaker").describe_endpoint(EndpointName=name))
        except AWSError as exc:
            if exc.code in ("ValidationError", "ValidationException"):
                return None
            raise

    def endpoint_config(self, name: str | None) -> dict[str, Any]:
        if not name:
            return {}
        try:
            with aws_errors("DescribeEndpointConfig"):
                return dict(self.client("sagemaker").describe_endpoint_config(EndpointConfigName=name))
        except AWSError as exc:
            if exc.code in ("ValidationError", "ValidationException"):
                return {}  # the config was deleted; the endpoint still runs on its copy
            raise

    def tags(self, arn: str) -> dict[str, str]:
        with aws_errors("ListTags"):
            pages = self.client("sagemaker").get_paginator("list_tags").paginate(ResourceArn=arn)
            return {t["Key"]: t["Value"] for page in pages for t in page.get("Tags", [])}

    def record(self, d: Mapping[str, Any], config: Mapping[str, Any], tags: Mapping[str, str]) -> EndpointRecord:
        variant = (config.get("ProductionVariants") or [{}])[0]
        serverless = variant.get("ServerlessConfig") or {}
        host = HOSTING.get(variant.get("InstanceType", ""))
        return EndpointRecord(
            str(d["EndpointName"]), kind="serverless" if serverless else "realtime", region=str(self.region),
            config_name=d.get("EndpointConfigName"), owned=KIND_TAG in tags,
            model_names=tuple(v["ModelName"] for v in config.get("ProductionVariants") or [] if v.get("ModelName")),
            instance=variant.get("InstanceType"), instance_count=int(variant.get("InitialInstanceCount") or 1),
            memory_mb=serverless.get("MemorySizeInMB"), max_concurrency=serverless.get("MaxConcurrency"),
            price_per_hour=host.price_per_hour if host else None, status=d.get("EndpointStatus"),
            expires_at=expiry_plan.parse_tag_time(tags.get(expiry_plan.EXPIRES_TAG)))


def model_error(name: str, exc: Any) -> ServingError:
    """The model container's own 4xx/5xx answer (botocore ModelError), with its status and message."""
    response = exc.response
    status = response.get("OriginalStatusCode")
    message = response.get("OriginalMessage") or response.get("Error", {}).get("Message")
    return ServingError(f"endpoint {name} answered {status}: {message}. Fix: check the request (a JSON body "
                        '{"inputs": [...]}); the container log is in CloudWatch /aws/sagemaker/Endpoints/' f"{name}.",
                        name=name, reason=message, status=int(status) if status else None, operation="InvokeEndpoint",
                        code="ModelError", request_id=response.get("ResponseMetadata", {}).get("RequestId"))


def _delete_if_there(operation: str, call: Any, args: dict[str, str]) -> bool:
    """Delete one resource; False when it was already gone (so delete is idempotent)."""
    from botocore.exceptions import ClientError

    try:
        call(**args)
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if exc.response.get("Error", {}).get("Code") in ("ValidationException", "ValidationError") and (
                "Could not find" in message or "does not exist" in message):
            return False
        with aws_errors(operation):
            raise
    return True

