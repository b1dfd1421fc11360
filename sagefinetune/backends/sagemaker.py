"""Launch, follow and re-attach to SageMaker training jobs. The only module that imports the sagemaker SDK.

Order of work in :meth:`SageMakerBackend.fit`, so that nothing costs money before every check passed:
plan checks (pure) -> credentials, region, role -> data read and labels checked -> image confirmed through the SDK
-> upload of the data channels (skipped when the same content is already there) -> CreateTrainingJob.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._deps import require
from ..entrypoint import contract
from ..errors import AWSError, ConfigError, CredentialsError, TrainingError
from ..instances import lookup
from ..models import model_source, preflight
from ..sagemaker_plan import CHECKPOINT_LOCAL_PATH, DATA_HASH, DEFAULT_BUCKET

if TYPE_CHECKING:
    from ..job import Job
    from ..plan import TrainingPlan
    from ..run import TrainingRun

ENTRYPOINT_DIR = Path(__file__).resolve().parent.parent / "entrypoint"
SOURCE_PATTERNS = ("*.py", "metrics/*.py")  # the entry point and the modules beside it; __init__.py stays behind
ROLE_ENV = "SAGEMAKER_ROLE"
TERMINAL = ("Completed", "Failed", "Stopped")


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


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Translate botocore errors into AWSError / CredentialsError; the original stays as __cause__."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except S3UploadFailedError as exc:
        cause = exc.__context__ if isinstance(exc.__context__, ClientError) else None
        code = cause.response.get("Error", {}).get("Code") if cause is not None else None
        raise AWSError(f"{operation} failed: {exc}", operation=operation, code=code) from exc
    except NoCredentialsError as exc:
        raise CredentialsError(f"{operation}: no AWS credentials. Fix: aws configure / aws sso login, or set "
                               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.") from exc
    except ClientError as exc:
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        raise AWSError(f"{operation} failed: {err.get('Code')}: {err.get('Message')}",
                       operation=operation, code=err.get("Code"), request_id=meta.get("RequestId")) from exc
    except BotoCoreError as exc:
        raise AWSError(f"{operation} failed: {exc}", operation=operation) from exc


class SageMakerBackend:
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
            raise CredentialsError("no AWS credentials found. Fix: aws configure / aws sso login, or set "
                                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.")

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
        from ..errors import ColumnError, DataError

        bucket, _, prefix = uri[len("s3://"):].partition("/")
        s3 = self.client("s3")
        with aws_errors(f"ListObjectsV2 {uri}"):
            listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
        files = [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith((".jsonl", ".json", ".csv", ".parquet"))]
        if not files:
            raise DataError(f"the {split} channel {uri} holds no .jsonl, .json, .csv or .parquet files. "
                            "Fix: check the prefix, or upload the split there.")
        key = sorted(files)[0]
        if key.endswith(".parquet"):
            return  # the schema sits in the footer; the entry point checks it
        with aws_errors(f"GetObject s3://{bucket}/{key}"):
            head = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-65535")["Body"].read().decode("utf-8", "replace")
        first = head.splitlines()[0] if head else ""
        if key.endswith(".csv"):
            import csv

            columns = next(csv.reader([first]), [])
        else:
            try:
                columns = list(json.loads(first))
            except ValueError:
                return  # a JSON array file or a line longer than the range: the entry point checks it
        wanted = {"text": dataset.text, "label": dataset.label, **({"text_pair": dataset.text_pair} if dataset.text_pair else {})}
        for role, column in wanted.items():
            if column not in columns:
                raise ColumnError(f"the {role} column {column!r} is not in s3://{bucket}/{key} ({split} channel); "
                                  f"its columns are {columns}. Fix: .columns({role}=<one of those>).")

    def check_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client("s3").head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            raise AWSError(f"bucket {bucket!r} cannot be used ({code}: it does not exist, or this account may not write "
                           "to it). Fix: create it, or pass bucket='<your bucket>'.", operation="HeadBucket", code=code,
                           request_id=exc.response.get("ResponseMetadata", {}).get("RequestId")) from exc

    # ---- fit --------------------------------------------------------------------------------------------
    def fit(self, job: Job, plan: TrainingPlan, *, progress: bool = True, wait: bool = True, logs: bool = False) -> TrainingRun:
        launch = self.prepare_launch(job, plan, progress=progress)
        plan = launch.plan
        with tempfile.TemporaryDirectory(prefix="sagefinetune-src-") as source_dir:
            trainer = self._model_trainer(plan, launch.session, launch.role, launch.hyperparameters, launch.bucket,
                                          launch.checkpoint, source_dir)
            with aws_errors("CreateTrainingJob"):
                trainer.train(input_data_config=launch.inputs, wait=False, logs=False)
        name = trainer._latest_training_job.training_job_name
        _say(f"launched SageMaker training job {name} ({plan.nodes} x {plan.instance}"
             f"{', spot' if spot_of(plan) else ''}) in {self.region}", progress)
        run = self.describe(name, plan)
        return self.wait(run, logs=logs, progress=progress) if wait else run

    def prepare_launch(self, job: Job, plan: TrainingPlan, *, progress: bool = True) -> Launch:
        """Every check and upload a launch needs, in the order that spends nothing before the checks passed.

        Shared by :meth:`fit` and the tuner (:mod:`sagefinetune.backends.sagemaker_tune`), so both launch the
        same ModelTrainer on the same channels.
        """
        spec = plan.sagemaker
        assert spec is not None
        self.check_credentials()
        from sagemaker.core.helper.session_helper import Session

        sm_session = self._sagemaker_session(Session, spec.bucket)
        role = self.resolve_role(spec.role, sm_session.sagemaker_config)
        self._confirm_image(plan)
        preflight(job.model_id, job.model_config, required=False)  # a readable config is checked before any upload

        hyperparameters = dict(plan.hyperparameters)
        notes: tuple[str, ...] = ()
        if job.dataset.is_remote:
            channels = {k: v for k, v in job.dataset.source.kwargs}
            for split, uri in channels.items():
                self.check_remote_columns(split, uri, job.dataset)
            data_hash = hashlib.sha256(json.dumps(channels, sort_keys=True).encode()).hexdigest()[:16]
            bucket = self._bucket(spec.bucket, sm_session)
        else:
            prepared = job.prepare()  # reads the rows, checks columns and labels: before any upload
            notes = prepared.notes
            for note in notes:
                warnings.warn(note, stacklevel=4)
            hyperparameters = prepared.with_data_hyperparameters(hyperparameters)
            from ..measure import refine_at_fit

            plan = refine_at_fit(job, plan, prepared)  # the estimate, with the rows as read
            bucket = self._bucket(spec.bucket, sm_session)
            data_hash = prepared.fingerprint
            channels = self.upload_channels(prepared, bucket, spec.prefix, progress=progress)
        source = model_source(job.model_id)
        if source == "s3":
            channels["model"] = job.model_id
        elif source == "folder":
            channels["model"] = self.upload_model_folder(job.model_id, bucket, spec.prefix, progress=progress)
        checkpoint = spec.checkpoint_s3.replace(DEFAULT_BUCKET, bucket).replace(DATA_HASH, data_hash)

        from sagemaker.core.training.configs import InputData

        inputs = [InputData(channel_name=name, data_source=uri) for name, uri in channels.items()]
        plan = replace(plan, notes=plan.notes + tuple(n for n in notes if n not in plan.notes))
        return Launch(sm_session, role, hyperparameters, bucket, checkpoint, inputs, plan)

    def _bucket(self, bucket: str | None, sm_session: Any) -> str:
        """The bucket given, else the SDK's default bucket (created by the SDK if missing); checked either way."""
        if bucket is None:
            with aws_errors("the default SageMaker bucket (STS GetCallerIdentity, S3 CreateBucket)"):
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
        resolved = image_uris.retrieve("huggingface", region=spec.region, version=spec.image.transformers,
                                       base_framework_version=f"pytorch{spec.image.pytorch}", py_version=spec.image.py,
                                       instance_type=plan.instance, image_scope="training")
        if resolved != spec.training_image:
            raise ConfigError(f"the planned image {spec.training_image} differs from the SDK's {resolved}; "
                              "the sagemaker package changed its table. Fix: upgrade sagefinetune.")

    def upload_channels(self, prepared: Any, bucket: str, prefix: str, *, progress: bool = True) -> dict[str, str]:
        """Write the splits and upload them under a content-addressed prefix; content already there is skipped."""
        s3 = self.client("s3")
        root = f"{prefix}/data/{prepared.fingerprint}"
        channels = {}
        with tempfile.TemporaryDirectory() as tmp:
            for split, folder in prepared.write(tmp).items():
                path = Path(folder) / contract.DATA_FILE
                key = f"{root}/{split}/{contract.DATA_FILE}"
                size = path.stat().st_size
                if self._exists(s3, bucket, key, size):
                    _say(f"s3://{bucket}/{key} is already uploaded ({size:,} bytes); skipping", progress)
                else:
                    with aws_errors("PutObject"), _upload_bar(f"upload {split}", size, progress) as callback:
                        s3.upload_file(str(path), bucket, key, Callback=callback)
                channels[split] = f"s3://{bucket}/{root}/{split}/"
        return channels

    def upload_model_folder(self, folder: str, bucket: str, prefix: str, *, progress: bool = True) -> str:
        """Upload a local model folder under a content-addressed prefix (files already there are skipped)."""
        s3 = self.client("s3")
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not _hidden(p.relative_to(folder)))
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(_file_hash(path).encode())
        root = f"{prefix}/models/{digest.hexdigest()[:16]}"
        for path in files:
            key = f"{root}/{path.relative_to(folder).as_posix()}"
            size = path.stat().st_size
            if not self._exists(s3, bucket, key, size):
                with aws_errors("PutObject"), _upload_bar(f"upload model {path.name}", size, progress) as callback:
                    s3.upload_file(str(path), bucket, key, Callback=callback)
        return f"s3://{bucket}/{root}/"

    @staticmethod
    def _exists(s3: Any, bucket: str, key: str, size: int) -> bool:
        from botocore.exceptions import ClientError

        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise AWSError(f"HeadObject s3://{bucket}/{key} failed: {exc}", operation="HeadObject") from exc
        return int(head.get("ContentLength", -1)) == size

    @staticmethod
    def _stage_source(staged: str, install_requirements: bool) -> str:
        """Copy the entry point's files (and its requirements, unless nothing may be installed) into ``staged``."""
        for source in source_files():
            target = Path(staged) / source.relative_to(ENTRYPOINT_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        if install_requirements:
            shutil.copy2(ENTRYPOINT_DIR / "requirements.txt", Path(staged) / "requirements.txt")
        return staged

    def _model_trainer(self, plan: TrainingPlan, sm_session: Any, role: str, hyperparameters: dict[str, str],
                       bucket: str, checkpoint: str, source_dir: str) -> Any:
        from sagemaker.core.shapes import MetricDefinition
        from sagemaker.core.training.configs import (
            CheckpointConfig,
            Compute,
            Networking,
            OutputDataConfig,
            SourceCode,
            StoppingCondition,
        )
        from sagemaker.train import ModelTrainer
        from sagemaker.train.distributed import Torchrun

        spec = plan.sagemaker
        assert spec is not None
        networking = None
        if spec.subnets or spec.network_isolation or spec.encrypt_inter_node:
            networking = Networking(subnets=list(spec.subnets) or None, security_group_ids=list(spec.security_groups) or None,
                                    enable_network_isolation=spec.network_isolation,
                                    enable_inter_container_traffic_encryption=spec.encrypt_inter_node)
        source = SourceCode(source_dir=self._stage_source(source_dir, spec.install_requirements), entry_script="train.py",
                            requirements="requirements.txt" if spec.install_requirements else None,
                            ignore_patterns=["__pycache__", "*.pyc"])
        trainer = ModelTrainer(
            sagemaker_session=sm_session,
            role=role,
            base_job_name=plan.job_name,
            training_image=spec.training_image,
            source_code=source,
            distributed=Torchrun(process_count_per_node=spec.gpus_per_node) if spec.distribution == "torchrun" else None,
            compute=Compute(instance_type=plan.instance, instance_count=plan.nodes, volume_size_in_gb=spec.volume_size,
                            volume_kms_key_id=spec.volume_kms_key, enable_managed_spot_training=spec.spot or None),
            networking=networking,
            stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.max_run,
                                                 max_wait_time_in_seconds=spec.max_wait),
            output_data_config=OutputDataConfig(s3_output_path=f"s3://{bucket}/{spec.prefix}/output",
                                                kms_key_id=spec.output_kms_key),
            checkpoint_config=CheckpointConfig(s3_uri=checkpoint, local_path=CHECKPOINT_LOCAL_PATH),
            hyperparameters=hyperparameters,
            environment=dict(spec.environment),
            tags=[{"key": k, "value": v} for k, v in spec.tags.items()],
        )
        return trainer.with_metric_definitions([MetricDefinition(name=m.name, regex=m.regex) for m in plan.metric_definitions])

    # ---- following a job --------------------------------------------------------------------------------
    def describe(self, name: str, plan: TrainingPlan | None = None, description: dict[str, Any] | None = None) -> TrainingRun:
        """The run as SageMaker describes it now (or as ``description``, a DescribeTrainingJob answer, says)."""
        from ..run import TrainingRun

        d = description
        if d is None:
            with aws_errors("DescribeTrainingJob"):
                d = self.client("sagemaker").describe_training_job(TrainingJobName=name)
        run = TrainingRun(name=name, backend="sagemaker", plan=plan, status=d["TrainingJobStatus"],
                          model_artifact=(d.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
                          training_seconds=d.get("TrainingTimeInSeconds"), billable_seconds=d.get("BillableTimeInSeconds"),
                          _backend=self)
        run.metrics = self.final_metrics(name, d)
        run.cost = self.cost(d)
        run.description = d
        return run

    def final_metrics(self, name: str, description: dict[str, Any]) -> dict[str, float]:
        """The last value of each metric series: from the job's log lines, else SageMaker's final metric list."""
        lines = [e["message"] for e in self.log_events(name)]
        metrics = metrics_from_lines(lines)
        if not metrics:
            metrics = {m["MetricName"]: float(m["Value"]) for m in description.get("FinalMetricDataList") or []}
        return metrics

    def cost(self, d: dict[str, Any]) -> Any:
        from ..instances import PRICE_SOURCE
        from ..run import Cost

        resources = d.get("ResourceConfig") or {}
        instance, nodes = resources.get("InstanceType"), int(resources.get("InstanceCount") or 1)
        try:
            price = lookup(str(instance)).price_per_hour
        except ConfigError:
            return Cost(0.0, source=f"no price known for {instance}")
        billable = float(d.get("BillableTimeInSeconds") or 0)
        if not billable:
            return Cost(0.0, 0.0, price, nodes, "not billed yet (BillableTimeInSeconds not reported)")
        return Cost(billable / 3600 * price * nodes, billable, price, nodes, PRICE_SOURCE)

    def log_events(self, name: str, start_time: int | None = None) -> list[dict[str, Any]]:
        """The job's CloudWatch log events, oldest first (empty when the log does not exist yet)."""
        from botocore.exceptions import ClientError

        logs = self.client("logs")
        kwargs: dict[str, Any] = {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamNamePrefix": f"{name}/"}
        if start_time is not None:
            kwargs["startTime"] = start_time
        events: list[dict[str, Any]] = []
        try:
            while True:
                page = logs.filter_log_events(**kwargs)
                events.extend(page.get("events", []))
                if not page.get("nextToken") or not page.get("events"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise AWSError(f"reading the logs of {name} failed: {exc}", operation="FilterLogEvents") from exc
        return sorted(events, key=lambda e: (e.get("timestamp", 0), e.get("eventId", "")))

    def wait(self, run: TrainingRun, *, logs: bool = False, progress: bool = True, timeout: float | None = None) -> TrainingRun:
        """Follow the job to its end: status transitions (and log lines when ``logs``); raise if it failed."""
        seen_transitions: set[str] = set()
        last_log = 0
        started = time.time()
        while True:
            with aws_errors("DescribeTrainingJob"):
                d = self.client("sagemaker").describe_training_job(TrainingJobName=run.name)
            for t in d.get("SecondaryStatusTransitions") or []:
                key = f"{t.get('Status')}|{t.get('StatusMessage')}"
                if key not in seen_transitions:
                    seen_transitions.add(key)
                    _say(f"{run.name}: {t.get('Status')} - {t.get('StatusMessage', '')}", progress)
            if logs:
                for event in self.log_events(run.name, start_time=last_log + 1 if last_log else None):
                    last_log = max(last_log, int(event.get("timestamp", 0)))
                    print(event["message"], flush=True)
            if d["TrainingJobStatus"] in TERMINAL:
                break
            if timeout is not None and time.time() - started > timeout:
                raise TrainingError(f"{run.name} is still {d['TrainingJobStatus']} after {timeout:.0f}s of waiting. "
                                    f"Fix: TrainingRun.attach({run.name!r}).wait() later.", job_name=run.name)
            time.sleep(self.poll_seconds)
        final = self.describe(run.name, run.plan, description=d)
        if final.status != "Completed":
            reason = d.get("FailureReason") or d.get("SecondaryStatus") or final.status
            logs_at = f"CloudWatch /aws/sagemaker/TrainingJobs/{run.name}"
            advice = (f"Its log: {logs_at}." if "Fix:" in reason else
                      f"Fix: read its log ({logs_at}); a spot job relaunched with the same Job resumes from its checkpoints.")
            raise TrainingError(f"SageMaker training job {run.name} {final.status.lower()}: {reason.rstrip('.')}. {advice}",
                                job_name=run.name, reason=reason)
        _say(f"{run.name}: Completed; {final.cost}", progress)
        return final

    def attach(self, name: str) -> TrainingRun:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"attach needs a training job name; got {name!r}. Fix: TrainingRun.attach('sft-...').")
        try:
            run = self.describe(name)
        except AWSError as exc:
            if exc.code not in ("ValidationException", "ResourceNotFound"):
                raise
            raise AWSError(f"no SageMaker training job named {name!r} in {self.region}. Fix: check the name and the "
                           "region (region=... or AWS_DEFAULT_REGION); the names are listed in the console or by "
                           "`aws sagemaker list-training-jobs`.", operation="DescribeTrainingJob", code=exc.code,
                           request_id=exc.request_id) from exc
        if run.status in ("Failed", "Stopped"):
            reason = run.description.get("FailureReason") or run.status
            raise TrainingError(f"SageMaker training job {name} {run.status.lower()}: {reason}", job_name=name, reason=reason)
        return run

    def download(self, run: TrainingRun, path: str | Path | None = None) -> Path:
        if not run.model_artifact:
            raise ConfigError(f"{run.name} has no model artifact yet (status {run.status}).")
        bucket, key = run.model_artifact[len("s3://"):].split("/", 1)
        folder = Path(path) if path is not None else Path("sft-runs") / run.name / "model"
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder.parent / "model.tar.gz"
        with aws_errors(f"download {run.model_artifact}"):
            self.client("s3").download_file(bucket, key, str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
        archive.unlink()
        return folder


def source_files() -> list[Path]:
    """The files of the entry point that a training job runs (no package __init__)."""
    found = {p for pattern in SOURCE_PATTERNS for p in ENTRYPOINT_DIR.glob(pattern) if p.name != "__init__.py"}
    return sorted(found)


def spot_of(plan: TrainingPlan) -> bool:
    return bool(plan.sagemaker and plan.sagemaker.spot)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metrics_from_lines(lines: list[str]) -> dict[str, float]:
    """The last value of each metric in the entry point's metric lines."""
    out: dict[str, float] = {}
    for line in lines:
        m = contract.METRIC_LINE.search(line)
        if m:
            out[m["name"]] = float(m["value"])
    return out


def _say(message: str, enabled: bool) -> None:
    if enabled:
        print(f"[sagefinetune] {message}", file=sys.stderr, flush=True)


@contextmanager
def _upload_bar(desc: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, mininterval=0.5) as bar:
        yield bar.update
