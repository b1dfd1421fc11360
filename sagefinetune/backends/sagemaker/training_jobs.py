"""Following SageMaker training jobs: describe, wait, read logs and metrics, cost, attach, download."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.records import Cost, RunRecord
from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.core.console import say
from sagefinetune.entrypoint import contract
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import AWSError, ConfigError, TrainingError
from sagefinetune.facts.instances import lookup
from sagefinetune.plans.tracking import Tracking

if TYPE_CHECKING:
    from sagefinetune.plans.training import TrainingPlan

TERMINAL = ("Completed", "Failed", "Stopped")


class TrainingJobs:
    """What :class:`~sagefinetune.backends.sagemaker.training.SageMakerBackend` does with a job once it exists.

    Needs ``client(name)``, ``region`` and ``poll_seconds`` from the class it is mixed into.
    """

    region: str | None
    poll_seconds: float

    def client(self, name: str) -> Any:
        raise NotImplementedError

    def describe(
        self, name: str, plan: TrainingPlan | None = None, description: dict[str, Any] | None = None
    ) -> RunRecord:
        """The run as SageMaker describes it now (or as ``description``, a DescribeTrainingJob answer, says)."""

        d = description
        if d is None:
            with aws_errors("DescribeTrainingJob"):
                d = self.client("sagemaker").describe_training_job(TrainingJobName=name)
        run = RunRecord(
            name=name,
            backend="sagemaker",
            plan=plan,
            status=d["TrainingJobStatus"],
            model_artifact=(d.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
            training_seconds=d.get("TrainingTimeInSeconds"),
            billable_seconds=d.get("BillableTimeInSeconds"),
        )
        run.metrics = self.final_metrics(name, d)
        run.cost = self.cost(d)
        run.description = d
        run.tracking = Tracking.from_environment(d.get("Environment") or {})  # job.track(...): the MLflow run
        return run

    def final_metrics(self, name: str, description: dict[str, Any]) -> dict[str, float]:
        """The last value of each metric series: from the job's log lines, else SageMaker's final metric list."""
        lines = [e["message"] for e in self.log_events(name)]
        metrics = metrics_from_lines(lines)
        if not metrics:
            metrics = {m["MetricName"]: float(m["Value"]) for m in description.get("FinalMetricDataList") or []}
        return metrics

    def cost(self, d: dict[str, Any]) -> Any:
        from sagefinetune.facts.instances import PRICE_SOURCE

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

    def wait(
        self, run: RunRecord, *, logs: bool = False, progress: bool = True, timeout: float | None = None
    ) -> RunRecord:
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
                    say(f"{run.name}: {t.get('Status')} - {t.get('StatusMessage', '')}", progress)
            if logs:
                for event in self.log_events(run.name, start_time=last_log + 1 if last_log else None):
                    last_log = max(last_log, int(event.get("timestamp", 0)))
                    print(redact(event["message"]), flush=True)
            if d["TrainingJobStatus"] in TERMINAL:
                break
            if timeout is not None and time.time() - started > timeout:
                raise TrainingError(
                    f"{run.name} is still {d['TrainingJobStatus']} after {timeout:.0f}s of waiting. "
                    f"Fix: TrainingRun.attach({run.name!r}).wait() later.",
                    job_name=run.name,
                )
            time.sleep(self.poll_seconds)
        final = self.describe(run.name, run.plan, description=d)
        final.tracking = final.tracking or run.tracking
        if final.status != "Completed":
            reason = d.get("FailureReason") or d.get("SecondaryStatus") or final.status
            logs_at = f"CloudWatch /aws/sagemaker/TrainingJobs/{run.name}"
            advice = (
                f"Its log: {logs_at}."
                if "Fix:" in reason
                else f"Fix: read its log ({logs_at}); a spot job relaunched with the same Job resumes from its checkpoints."
            )
            raise TrainingError(
                f"SageMaker training job {run.name} {final.status.lower()}: {reason.rstrip('.')}. {advice}",
                job_name=run.name,
                reason=reason,
            )
        say(f"{run.name}: Completed; {final.cost}", progress)
        return final

    def attach(self, name: str) -> RunRecord:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"attach needs a training job name; got {name!r}. Fix: TrainingRun.attach('sft-...').")
        try:
            run = self.describe(name)
        except AWSError as exc:
            if exc.code not in ("ValidationException", "ResourceNotFound"):
                raise
            raise AWSError(
                f"no SageMaker training job named {name!r} in {self.region}. Fix: check the name and the "
                "region (region=... or AWS_DEFAULT_REGION); the names are listed in the console or by "
                "`aws sagemaker list-training-jobs`.",
                operation="DescribeTrainingJob",
                code=exc.code,
                request_id=exc.request_id,
            ) from exc
        if run.status in ("Failed", "Stopped"):
            reason = run.description.get("FailureReason") or run.status
            raise TrainingError(
                f"SageMaker training job {name} {run.status.lower()}: {reason}", job_name=name, reason=reason
            )
        return run

    def download(self, run: RunRecord, path: str | Path | None = None) -> Path:
        if not run.model_artifact:
            raise ConfigError(f"{run.name} has no model artifact yet (status {run.status}).")
        bucket, key = run.model_artifact[len("s3://") :].split("/", 1)
        folder = Path(path) if path is not None else Path("sft-runs") / run.name / "model"
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder.parent / "model.tar.gz"
        with aws_errors(f"download {run.model_artifact}"):
            self.client("s3").download_file(bucket, key, str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
        archive.unlink()
        return folder


def metrics_from_lines(lines: list[str]) -> dict[str, float]:
    """The last value of each metric in the entry point's metric lines."""
    out: dict[str, float] = {}
    for line in lines:
        m = contract.METRIC_LINE.search(line)
        if m:
            out[m["name"]] = float(m["value"])
    return out
