"""The pipeline on SageMaker: its definition (pure), upsert (uploads once per content, then CreatePipeline or
UpdatePipeline) and start. The SDK is imported here, lazily.

``definition()`` builds the SDK's objects with a session that cannot reach AWS: every AWS call the SDK would make
while rendering (a role check, a bucket lookup) is refused at the boto layer, and the local folders it would upload
(the training code, its drivers, the evaluation code) are addressed by the hash of their content instead:
``s3://<bucket>/<prefix>/code/<hash>/``. ``upsert()`` builds the same objects with a live session, which uploads
those folders to the same keys, once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.console import say
from sagefinetune.errors import AWSError, ConfigError

if TYPE_CHECKING:
    from sagefinetune.pipeline.execution import PipelineExecution
    from sagefinetune.pipeline.spec import Pipeline

ROLE_PLACEHOLDER = "arn:aws:iam::000000000000:role/execution-role-given-to-upsert"
OFFLINE_KEY = "definition-only"  # the offline session's credentials: never used, every call is refused first


class _Refused(RuntimeError):
    """Raised at the boto layer when definition() would have called AWS."""


@contextmanager
def sdk_environment(region: str, offline: bool) -> Iterator[None]:
    """Import the SDK's workflow modules (they create boto3 clients on import: they need a region) and keep the
    SDK's chatter (INFO lines, 'popping out ...' warnings) out of the user's output. Offline, the SDK's role check,
    which would call IAM, is skipped. Everything is restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "SAGEMAKER_VALIDATE_ROLE")}
    if not (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")):
        os.environ["AWS_DEFAULT_REGION"] = region
    if offline:
        os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    levels: dict[str, int] = {}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Running within a PipelineSession")
            import sagemaker.mlops.workflow  # noqa: F401  (the import that needs the region)
            import sagemaker.serve.model_builder  # noqa: F401

            for name in [n for n in logging.Logger.manager.loggerDict if n.split(".")[0] == "sagemaker"]:
                levels[name] = logging.getLogger(name).level
                logging.getLogger(name).setLevel(logging.ERROR)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_session(boto: Any, bucket: str | None, prefix: str, *, live: bool, progress: bool = True) -> Any:
    """A PipelineSession whose uploads are content-addressed (and, unless ``live``, only recorded)."""
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    class ContentAddressedSession(PipelineSession):  # type: ignore[misc]
        def upload_data(self, path: str, bucket: str | None = None, key_prefix: str = "data", callback: Any = None,
                        extra_args: Any = None) -> str:
            files = _read_files(Path(path))
            digest = hashlib.sha256(b"".join(rel.encode() + b"\0" + hashlib.sha256(data).digest()
                                             for rel, data in files)).hexdigest()[:16]
            where = bucket or self.default_bucket()
            root = f"{prefix}/code/{digest}"
            for rel, data in files:
                self.sft_uploads[f"s3://{where}/{root}/{rel}"] = data
                if live:
                    _put_once(self.sft_s3, where, f"{root}/{rel}", data, extra_args, progress)
            return f"s3://{where}/{root}" if Path(path).is_dir() else f"s3://{where}/{root}/{Path(path).name}"

        def default_bucket(self) -> str:
            if live:
                return str(super().default_bucket())
            return str(self._default_bucket_name_override)

    config = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    session = ContentAddressedSession(boto_session=boto, default_bucket=bucket, sagemaker_config=config)
    session.sft_uploads = {}  # what the definition refers to: s3 URI -> bytes
    session.sft_s3 = boto.client("s3") if live else None
    return session


def offline_boto(region: str) -> Any:
    """A boto3 session that refuses every AWS call (and so never looks for credentials or the network)."""
    import boto3

    boto = boto3.Session(aws_access_key_id=OFFLINE_KEY, aws_secret_access_key=OFFLINE_KEY, region_name=region)

    def refuse(event_name: str = "", **_: Any) -> None:
        raise _Refused(f"definition() does not call AWS ({event_name.split('.', 1)[-1]})")

    boto.events.register("before-call.*.*", refuse)
    return boto


def _graph_builder() -> Any:
    """The step graph's builder; it needs the ``pipeline`` extra (sagemaker-mlops, sagemaker-serve)."""
    from sagefinetune.core.deps import require

    require("sagemaker.mlops", "build a SageMaker pipeline")
    require("sagemaker.serve", "build a SageMaker pipeline's model and endpoint steps")
    from sagefinetune.pipeline.graph import build

    return build


def definition(pipe: Pipeline, *, role: str | None, bucket: str | None) -> str:
    from sagefinetune.backends.sagemaker.training import ROLE_ENV, SageMakerBackend
    from sagefinetune.plans.sagemaker import DEFAULT_BUCKET

    spec = _spec(pipe)
    with sdk_environment(spec.region, offline=True):
        boto = offline_boto(spec.region)
        backend = SageMakerBackend(boto, region=spec.region)
        where = bucket or spec.bucket or DEFAULT_BUCKET
        staged = backend.stage_inputs(pipe.job, pipe.plan, lambda: where, upload=False)
        session = make_session(boto, where, spec.prefix, live=False)
        build = _graph_builder()

        with tempfile.TemporaryDirectory(prefix="sagefinetune-pipeline-") as scratch:
            sdk = build(pipe, session, role or spec.role or os.environ.get(ROLE_ENV) or ROLE_PLACEHOLDER, staged,
                        backend, scratch)
            return str(sdk.definition())


def upsert(pipe: Pipeline, *, role: str | None, description: str | None, boto_session: Any, progress: bool) -> dict[str, Any]:
    """Everything checked first (credentials, role, image, data), then uploads, the model group, the pipeline."""
    from sagefinetune.backends.sagemaker.aws import aws_errors
    from sagefinetune.backends.sagemaker.training import SageMakerBackend
    from sagefinetune.facts.models import preflight

    spec = _spec(pipe)
    backend = SageMakerBackend(boto_session, region=spec.region)
    backend.check_credentials()
    with sdk_environment(spec.region, offline=False):
        session = make_session(backend.boto, spec.bucket, spec.prefix, live=True, progress=progress)
        role = backend.resolve_role(role or spec.role, session.sagemaker_config)
        backend._confirm_image(pipe.plan)
        preflight(pipe.job.model_id, pipe.job.model_config, required=False, reinitialize=pipe.job.reinitialize)
        staged = backend.stage_inputs(pipe.job, pipe.plan, lambda: backend._bucket(spec.bucket, session), progress=progress)
        session._default_bucket_name_override = staged.bucket
        build = _graph_builder()

        with tempfile.TemporaryDirectory(prefix="sagefinetune-pipeline-") as scratch:
            sdk = build(pipe, session, role, staged, backend, scratch)
            ensure_group(backend, pipe.group, pipe.name)
            tags = [{"Key": k, "Value": v} for k, v in spec.tags.items() if k != "sagefinetune:job"]
            tags.append({"Key": "sagefinetune:pipeline", "Value": pipe.name})
            with aws_errors("CreatePipeline / UpdatePipeline"):
                response: dict[str, Any] = sdk.upsert(role_arn=role, description=description or str(pipe), tags=tags)
    say(f"pipeline {pipe.name} is ready in {spec.region}: {response.get('PipelineArn')}", progress)
    return response


def ensure_group(backend: Any, group: str, pipeline: str) -> None:
    """The model package group the Register step writes to: created (tagged) when missing."""
    from botocore.exceptions import ClientError

    from sagefinetune.backends.sagemaker.aws import aws_errors

    client = backend.client("sagemaker")
    try:
        client.describe_model_package_group(ModelPackageGroupName=group)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
            raise AWSError(f"DescribeModelPackageGroup {group} failed: {exc}", operation="DescribeModelPackageGroup",
                           code=exc.response.get("Error", {}).get("Code")) from exc
    with aws_errors("CreateModelPackageGroup"):
        client.create_model_package_group(
            ModelPackageGroupName=group, ModelPackageGroupDescription=f"models registered by the pipeline {pipeline}",
            Tags=[{"Key": "sagefinetune:pipeline", "Value": pipeline}])


def start(pipe: Pipeline, parameters: dict[str, Any], *, boto_session: Any) -> PipelineExecution:
    from sagefinetune.backends.sagemaker.training import SageMakerBackend
    from sagefinetune.pipeline.execution import PipelineExecution

    spec = _spec(pipe)
    backend = SageMakerBackend(boto_session, region=spec.region)
    backend.check_credentials()
    request: dict[str, Any] = {"PipelineName": pipe.name}
    if parameters:
        request["PipelineParameters"] = [{"Name": k, "Value": str(v)} for k, v in parameters.items()]
    try:
        arn = backend.client("sagemaker").start_pipeline_execution(**request)["PipelineExecutionArn"]
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in ("ResourceNotFound", "ValidationException"):
            raise AWSError(f"no pipeline {pipe.name!r} to start in {spec.region} ({code}). Fix: pipe.upsert(role=...) "
                           "first.", operation="StartPipelineExecution", code=code) from exc
        raise AWSError(f"StartPipelineExecution failed: {exc}", operation="StartPipelineExecution", code=code) from exc
    say(f"started {arn}", True)
    return PipelineExecution(arn, backend)


def _spec(pipe: Pipeline) -> Any:
    spec = pipe.plan.sagemaker
    if spec is None:
        raise ConfigError(f"pipeline {pipe.name} trains with instance='local': it runs here (run_local()), not on "
                          "SageMaker. Fix: job.pipeline(..., instance='ml.g5.xlarge').")
    return spec


def _read_files(path: Path) -> list[tuple[str, bytes]]:
    if path.is_file():
        return [(path.name, path.read_bytes())]
    return [(p.relative_to(path).as_posix(), p.read_bytes()) for p in sorted(path.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts]


def _put_once(s3: Any, bucket: str, key: str, data: bytes, extra_args: Any, progress: bool) -> None:
    from botocore.exceptions import ClientError

    from sagefinetune.backends.sagemaker.aws import aws_errors

    try:
        if int(s3.head_object(Bucket=bucket, Key=key).get("ContentLength", -1)) == len(data):
            return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise AWSError(f"HeadObject s3://{bucket}/{key} failed: {exc}", operation="HeadObject") from exc
    with aws_errors("PutObject"):
        s3.put_object(Bucket=bucket, Key=key, Body=data, **dict(extra_args or {}))
