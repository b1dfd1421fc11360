"""Launch SageMaker training jobs (following them: :mod:`.training_jobs`). The SDK is imported only in backends/.

Order of work in :meth:`SageMakerBackend.fit`, so that nothing costs money before every check passed:
plan checks (pure) -> credentials, region, role -> data read and labels checked -> image confirmed through the SDK
-> upload of the data channels (skipped when the same content is already there) -> CreateTrainingJob.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker import s3_content
from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.backends.sagemaker.default_bucket import default_bucket_errors
from sagefinetune.backends.sagemaker.s3_labels import check_remote_labels
from sagefinetune.backends.sagemaker.source_code import source_code
from sagefinetune.backends.sagemaker.training_jobs import TERMINAL, TrainingJobs, metrics_from_lines
from sagefinetune.backends.tracking import name_run, open_sagemaker_run
from sagefinetune.core.console import say
from sagefinetune.core.deps import require
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import AWSError, ConfigError, CredentialsError
from sagefinetune.facts.models import model_source, preflight
from sagefinetune.plans.hyperparameters import checked_at_fit
from sagefinetune.plans.sagemaker import CHECKPOINT_LOCAL_PATH, DATA_HASH, DEFAULT_BUCKET
from sagefinetune.plans.tracking import REQUIREMENTS

__all__ = ["SageMakerBackend", "metrics_from_lines", "TERMINAL"]

if TYPE_CHECKING:
    from sagefinetune.backends.records import RunRecord
    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan

ROLE_ENV = "SAGEMAKER_ROLE"


@dataclass(frozen=True)
class Launch:
    """What a launch needs once every check passed and the data is uploaded: the SDK session, the role, the
    hyperparameters with the data's (labels, problem type), the bucket, the filled-in checkpoint URI, the channels."""

    session: Any
    role: str
    hyperparameters: dict[str, str]
    bucket: str
    checkpoint: str
    inputs: list[Any]
    plan: TrainingPlan  # with the estimate refined on the rows as read, and what preparing them noted
    data_hash: str = ""


@dataclass(frozen=True)
class StagedInputs:
    """What a training job reads: the plan (with the data's notes), channels, hyperparameters, checkpoint prefix."""

    plan: TrainingPlan
    channels: dict[str, str]
    hyperparameters: dict[str, str]
    checkpoint: str
    bucket: str
    data_hash: str
    labels: tuple[str, ...]


class SageMakerBackend(TrainingJobs):
    """Talks to SageMaker and S3 through boto3 and the sagemaker SDK (v3).

    Args:
        boto_session: a ``boto3.Session`` (default: a new one, from the usual credential chain).
        region: overrides the session's region.
        poll_seconds: how often ``wait`` asks for the job's status.
    """

    def __init__(self, boto_session: Any = None, region: str | None = None, poll_seconds: float = 30.0) -> None:
        require("boto3", "talk to AWS")
        import boto3

        self.boto = boto_session or boto3.Session(region_name=region)
        self.region = region or self.boto.region_name
        self.poll_seconds = poll_seconds
        self._clients: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self.boto.client(name, region_name=self.region)
        return self._clients[name]

    # ---- checks that need the environment (credentials, role) ----------------------------------------
    def check_credentials(self) -> None:
        if self.region is None:
            raise CredentialsError("no AWS region. Fix: export AWS_DEFAULT_REGION=us-east-1, or fit(..., region=...).")
        if self.boto.get_credentials() is None:
            raise CredentialsError(
                "no AWS credentials found. Fix: aws configure / aws sso login, or set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
            )

    def resolve_role(self, role: str | None, sdk_config: dict[str, Any] | None = None) -> str:
        """The role argument, else the SDK config's SageMaker.TrainingJob.RoleArn, else $SAGEMAKER_ROLE."""
        config_role = (((sdk_config or {}).get("SageMaker") or {}).get("TrainingJob") or {}).get("RoleArn")
        found = role or config_role or os.environ.get(ROLE_ENV)
        if not found:
            raise CredentialsError(
                "no SageMaker execution role. Fix: fit(..., role='arn:aws:iam::<account>:role/<name>'), set "
                f"{ROLE_ENV}, or set SageMaker.TrainingJob.RoleArn in the sagemaker config file."
            )
        if not found.startswith("arn:aws"):
            raise CredentialsError(f"role {found!r} is not an IAM role ARN. Fix: 'arn:aws:iam::<account>:role/<name>'.")
        return found

    def check_remote_columns(self, split: str, uri: str, dataset: Any) -> None:
        """A from_s3 channel must hold data files with the named columns: read the first file's header, not the rows."""
        from sagefinetune.errors import ColumnError, DataError

        bucket, _, prefix = uri[len("s3://") :].partition("/")
        s3 = self.client("s3")
        with aws_errors(f"ListObjectsV2 {uri}"):
            listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
        files = [
            o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith((".jsonl", ".json", ".csv", ".parquet"))
        ]
        if not files:
            raise DataError(
                f"the {split} channel {uri} holds no .jsonl, .json, .csv or .parquet files. "
                "Fix: check the prefix, or upload the split there."
            )
        key = sorted(files)[0]
        if key.endswith(".parquet"):
            return  # the schema sits in the footer; the entry point checks it
        with aws_errors(f"GetObject s3://{bucket}/{key}"):
            head = (
                s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-65535")["Body"].read().decode("utf-8", "replace")
            )
        first = head.splitlines()[0] if head else ""
        if key.endswith(".csv"):
            import csv

            columns = next(csv.reader([first]), [])
        else:
            try:
                columns = list(json.loads(first))
            except ValueError:
                return  # a JSON array file or a line longer than the range: the entry point checks it
        wanted = {
            "text": dataset.text,
            "label": dataset.label,
            **({"text_pair": dataset.text_pair} if dataset.text_pair else {}),
        }
        for role, column in wanted.items():
            if column not in columns:
                raise ColumnError(
                    f"the {role} column {column!r} is not in s3://{bucket}/{key} ({split} channel); "
                    f"its columns are {columns}. Fix: .columns({role}=<one of those>)."
                )

    def check_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client("s3").head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            raise AWSError(
                f"bucket {bucket!r} cannot be used ({code}: it does not exist, or this account may not write "
                "to it). Fix: create it, or pass bucket='<your bucket>'.",
                operation="HeadBucket",
                code=code,
                request_id=exc.response.get("ResponseMetadata", {}).get("RequestId"),
            ) from exc

    # ---- fit --------------------------------------------------------------------------------------------
    def fit(
        self, job: Job, plan: TrainingPlan, *, progress: bool = True, wait: bool = True, logs: bool = False
    ) -> RunRecord:
        launch = self.prepare_launch(job, plan, progress=progress)
        # job.track(...): the MLflow run, opened now; its id and parameters go into the job's environment
        plan, tracking = open_sagemaker_run(launch.plan, launch.data_hash, job.model_id)
        with tempfile.TemporaryDirectory(prefix="sagefinetune-src-") as source_dir:
            trainer = self.model_trainer(
                plan, launch.session, launch.role, launch.hyperparameters, launch.bucket, launch.checkpoint, source_dir
            )
            with aws_errors("CreateTrainingJob"):
                trainer.train(input_data_config=launch.inputs, wait=False, logs=False)
        name = trainer._latest_training_job.training_job_name
        say(
            f"launched SageMaker training job {name} ({plan.nodes} x {plan.instance}"
            f"{', spot' if spot_of(plan) else ''}) in {self.region}",
            progress,
        )
        if tracking is not None:
            name_run(tracking, name)
        run = self.describe(name, plan)
        run.tracking = run.tracking or tracking  # describe reads it from the job's Environment
        return self.wait(run, logs=logs, progress=progress) if wait else run

    def prepare_launch(self, job: Job, plan: TrainingPlan, *, progress: bool = True) -> Launch:
        """Every check and upload a launch needs, in the order that spends nothing before the checks passed.

        Shared by :meth:`fit` and the tuner (:mod:`sagefinetune.backends.sagemaker.tuning`), so both launch the
        same ModelTrainer on the same channels.
        """
        spec = plan.sagemaker
        assert spec is not None
        self.check_credentials()
        from sagemaker.core.helper.session_helper import Session

        sm_session = self._sagemaker_session(Session, spec.bucket)
        role = self.resolve_role(spec.role, sm_session.sagemaker_config)
        self._confirm_image(plan)
        # a readable config is checked before any upload
        preflight(job.model_id, job.model_config, required=False, reinitialize=job.reinitialize)

        staged = self.stage_inputs(job, plan, lambda: self._bucket(spec.bucket, sm_session), progress=progress)

        from sagemaker.core.training.configs import InputData

        inputs = [InputData(channel_name=name, data_source=uri) for name, uri in staged.channels.items()]
        return Launch(sm_session, role, staged.hyperparameters, staged.bucket, staged.checkpoint, inputs, staged.plan,
                      staged.data_hash)

    def stage_inputs(
        self, job: Job, plan: TrainingPlan, bucket: Callable[[], str], *, upload: bool = True, progress: bool = True
    ) -> StagedInputs:
        """The job's channels, data hyperparameters and checkpoint prefix, with local data uploaded once per content.

        Reads and checks the rows (or, for ``from_s3`` data, the first file's header and the label column of each
        channel, see :mod:`.s3_labels`) before the bucket is asked for. With ``upload=False`` nothing is uploaded or read from S3: the content-addressed URIs
        are computed (a pipeline definition shows them before anything exists).
        """
        spec = plan.sagemaker
        assert spec is not None
        hyperparameters = dict(plan.hyperparameters)
        labels = tuple(job.label_map.names_) if job.label_map is not None else ()
        if job.dataset.is_remote:
            channels = {k: v for k, v in job.dataset.source.kwargs}
            if upload:
                for split, uri in channels.items():
                    self.check_remote_columns(split, uri, job.dataset)
                # the label column, read (all of a small file, ranges of a large one) and checked against the map
                check_remote_labels(self.client("s3"), channels, job.dataset.label, job.label_map)
            data_hash = hashlib.sha256(json.dumps(channels, sort_keys=True).encode()).hexdigest()[:16]
            where = bucket()
        else:
            prepared = job.prepare()  # reads the rows, checks columns and labels: before any upload
            notes = checked_at_fit(job, prepared)  # class_weights against the classes; imbalance
            for note in notes:
                warnings.warn(redact(note), stacklevel=5)
            plan = replace(plan, notes=plan.notes + tuple(n for n in notes if n not in plan.notes))
            hyperparameters = prepared.with_data_hyperparameters(hyperparameters)
            from sagefinetune.cost.measure import refine_at_fit

            plan = refine_at_fit(job, plan, prepared)  # max_length="auto" and the estimate, from the rows as read
            hyperparameters["max_length"] = plan.hyperparameters["max_length"]
            labels = tuple(prepared.label_map.names_)
            where = bucket()
            data_hash = prepared.fingerprint
            channels = (
                self.upload_channels(prepared, where, spec.prefix, progress=progress)
                if upload
                else s3_content.channel_uris(prepared, where, spec.prefix)
            )
        source = model_source(job.model_id)
        if source == "s3":
            channels["model"] = job.model_id
        elif source == "folder":
            channels["model"] = (
                self.upload_model_folder(job.model_id, where, spec.prefix, progress=progress)
                if upload
                else s3_content.model_folder_uri(job.model_id, where, spec.prefix)
            )
        checkpoint = spec.checkpoint_s3.replace(DEFAULT_BUCKET, where).replace(DATA_HASH, data_hash)
        return StagedInputs(plan, channels, hyperparameters, checkpoint, where, data_hash, labels)

    def _bucket(self, bucket: str | None, sm_session: Any) -> str:
        """The bucket given, else the SDK's default bucket (created by the SDK if missing); checked either way."""
        if bucket is None:
            with default_bucket_errors(self.region):  # says so, and how to pass bucket= or set credentials
                bucket = str(sm_session.default_bucket())
        self.check_bucket(bucket)
        return bucket

    def _sagemaker_session(self, session_cls: Any, bucket: str | None) -> Any:
        config = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
        with aws_errors("sagemaker Session"):
            return session_cls(boto_session=self.boto, default_bucket=bucket, sagemaker_config=config)

    def _confirm_image(self, plan: TrainingPlan) -> None:
        """The plan's URI (from the SDK's table, read as data) must be the one the SDK itself resolves."""
        from sagemaker.core import image_uris

        spec = plan.sagemaker
        assert spec is not None
        resolved = image_uris.retrieve(
            "huggingface",
            region=spec.region,
            version=spec.image.transformers,
            base_framework_version=f"pytorch{spec.image.pytorch}",
            py_version=spec.image.py,
            instance_type=plan.instance,
            image_scope="training",
        )
        if resolved != spec.training_image:
            raise ConfigError(
                f"the planned image {spec.training_image} differs from the SDK's {resolved}; "
                "the sagemaker package changed its table. Fix: upgrade sagefinetune."
            )

    def upload_channels(self, prepared: Any, bucket: str, prefix: str, *, progress: bool = True) -> dict[str, str]:
        """Write the splits and upload them under a content-addressed prefix; content already there is skipped."""
        return s3_content.upload_channels(self.client("s3"), prepared, bucket, prefix, progress=progress)

    def upload_model_folder(self, folder: str, bucket: str, prefix: str, *, progress: bool = True) -> str:
        """Upload a local model folder under a content-addressed prefix (files already there are skipped)."""
        return s3_content.upload_model_folder(self.client("s3"), folder, bucket, prefix, progress=progress)

    def model_trainer(
        self,
        plan: TrainingPlan,
        sm_session: Any,
        role: str,
        hyperparameters: dict[str, str],
        bucket: str,
        checkpoint: Any,
        source_dir: str | None,
        instance_type: Any = None,
    ) -> Any:
        """The ModelTrainer of a fit, and of a pipeline's training step (there ``instance_type`` and ``checkpoint``
        may be pipeline variables: a parameter, a Join with the execution id; and ``source_dir`` is None: the code is
        staged once per content, see :func:`stable_source_dir`)."""
        from sagemaker.core.shapes import MetricDefinition
        from sagemaker.core.training.configs import CheckpointConfig, Compute, OutputDataConfig, StoppingCondition
        from sagemaker.train import ModelTrainer
        from sagemaker.train.distributed import Torchrun

        spec = plan.sagemaker
        assert spec is not None
        trainer = ModelTrainer(
            sagemaker_session=sm_session,
            role=role,
            base_job_name=plan.job_name,
            training_image=spec.training_image,
            source_code=source_code(spec, source_dir, REQUIREMENTS if plan.tracking is not None else ()),
            distributed=Torchrun(process_count_per_node=spec.gpus_per_node)
            if spec.distribution == "torchrun"
            else None,
            compute=Compute(
                instance_type=instance_type or plan.instance,
                instance_count=plan.nodes,
                volume_size_in_gb=spec.volume_size,
                volume_kms_key_id=spec.volume_kms_key,
                enable_managed_spot_training=spec.spot or None,
            ),
            networking=_networking(spec),
            stopping_condition=StoppingCondition(
                max_runtime_in_seconds=spec.max_run, max_wait_time_in_seconds=spec.max_wait
            ),
            output_data_config=OutputDataConfig(
                s3_output_path=f"s3://{bucket}/{spec.prefix}/output", kms_key_id=spec.output_kms_key
            ),
            checkpoint_config=CheckpointConfig(s3_uri=checkpoint, local_path=CHECKPOINT_LOCAL_PATH),
            hyperparameters=hyperparameters,
            environment={**(plan.tracking.environment() if plan.tracking else {}), **spec.environment},
            tags=[{"key": k, "value": v} for k, v in spec.tags.items()],
        )
        return trainer.with_metric_definitions(
            [MetricDefinition(name=m.name, regex=m.regex) for m in plan.metric_definitions]
        )


def _networking(spec: Any) -> Any:
    """The job's VPC settings, or None when it asks for none."""
    from sagemaker.core.training.configs import Networking

    if not (spec.subnets or spec.network_isolation or spec.encrypt_inter_node):
        return None
    return Networking(
        subnets=list(spec.subnets) or None,
        security_group_ids=list(spec.security_groups) or None,
        enable_network_isolation=spec.network_isolation,
        enable_inter_container_traffic_encryption=spec.encrypt_inter_node,
    )


def spot_of(plan: TrainingPlan) -> bool:
    return bool(plan.sagemaker and plan.sagemaker.spot)
