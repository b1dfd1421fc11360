"""A SageMaker pipeline execution: its status, its steps, and waiting for its end. boto3 only."""

from __future__ import annotations

import time
from typing import Any

from sagefinetune.errors import AWSError, ConfigError, PipelineError

TERMINAL = ("Succeeded", "Failed", "Stopped")


class PipelineExecution:
    """One execution of a SageMaker pipeline (from :meth:`sagefinetune.pipeline.Pipeline.start`, or :meth:`attach`).

    Example:
        >>> execution = pipe.start()  # doctest: +SKIP
        >>> execution.wait().status()  # doctest: +SKIP
        'Succeeded'
        >>> [(s["name"], s["status"]) for s in execution.steps()]  # doctest: +SKIP
        [('Train', 'Succeeded'), ('Evaluate', 'Succeeded'), ('Condition', 'Succeeded'), ('Register', 'Succeeded')]
    """

    def __init__(self, arn: str, backend: Any, poll_seconds: float = 30.0) -> None:
        self.arn = arn
        self._backend = backend
        self.poll_seconds = poll_seconds
        self.description: dict[str, Any] = {}

    @classmethod
    def attach(cls, arn: str, *, boto_session: Any = None, region: str | None = None) -> PipelineExecution:
        """An execution by its ARN (e.g. from the console, or after the client died)."""
        from sagefinetune.backends.sagemaker.training import SageMakerBackend

        if not isinstance(arn, str) or ":pipeline/" not in arn or "/execution/" not in arn:
            raise ConfigError(f"{arn!r} is not a pipeline execution ARN. "
                              "Fix: arn:aws:sagemaker:<region>:<account>:pipeline/<name>/execution/<id>.")
        return cls(arn, SageMakerBackend(boto_session, region=region or arn.split(":")[3]))

    @property
    def pipeline(self) -> str:
        return self.arn.split(":pipeline/", 1)[1].split("/", 1)[0]

    def describe(self) -> dict[str, Any]:
        """DescribePipelineExecution's answer (kept as ``description``)."""
        from sagefinetune.backends.sagemaker.aws import aws_errors

        with aws_errors("DescribePipelineExecution"):
            self.description = self._backend.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=self.arn)
        return self.description

    def status(self) -> str:
        """``Executing``, ``Stopping``, ``Stopped``, ``Failed`` or ``Succeeded``."""
        return str(self.describe()["PipelineExecutionStatus"])

    def steps(self) -> list[dict[str, Any]]:
        """The steps that ran or run, oldest first: ``name``, ``status``, ``started``, ``ended``, ``failure_reason``,
        ``job`` (the training or processing job's ARN, the model package's, ...)."""
        from sagefinetune.backends.sagemaker.aws import aws_errors

        client = self._backend.client("sagemaker")
        found: list[dict[str, Any]] = []
        with aws_errors("ListPipelineExecutionSteps"):
            for page in client.get_paginator("list_pipeline_execution_steps").paginate(
                    PipelineExecutionArn=self.arn, SortOrder="Ascending"):
                found.extend(page.get("PipelineExecutionSteps", []))
        return [{"name": s.get("StepName"), "status": s.get("StepStatus"), "started": s.get("StartTime"),
                 "ended": s.get("EndTime"), "failure_reason": s.get("FailureReason"), "job": _job_of(s.get("Metadata"))}
                for s in found]

    def wait(self, *, timeout: float | None = None, progress: bool = True) -> PipelineExecution:
        """Follow the execution to its end; raise :class:`~sagefinetune.errors.PipelineError` if it failed or stopped."""
        started, last = time.time(), None
        while True:
            status = self.status()
            if status != last and progress:
                print(f"[sagefinetune] {self.pipeline}: {status}", flush=True)
            last = status
            if status in TERMINAL:
                break
            if timeout is not None and time.time() - started > timeout:
                raise PipelineError(f"execution {self.arn} is still {status} after {timeout:.0f}s. "
                                    "Fix: PipelineExecution.attach(arn).wait() later.", run=self)
            time.sleep(self.poll_seconds)
        if status != "Succeeded":
            reason = self.description.get("FailureReason") or "SageMaker gave no reason"
            step = self._failed_step()
            where = f" at step {step['name']}: {step['failure_reason']}" if step else ""
            raise PipelineError(f"pipeline execution {self.arn} {status.lower()}{where} ({reason}). Fix: read the failed "
                                "step's logs in the SageMaker console (Pipelines) or CloudWatch.",
                                step=step["name"] if step else None, run=self)
        return self

    def _failed_step(self) -> dict[str, Any] | None:
        try:
            failed = [s for s in self.steps() if s["status"] in ("Failed", "Stopped")]
        except AWSError:  # the reason from DescribePipelineExecution is reported alone
            return None
        return failed[0] if failed else None

    def __repr__(self) -> str:
        status = self.description.get("PipelineExecutionStatus", "?")
        return f"<PipelineExecution {self.arn.rsplit('/', 1)[-1]} of {self.pipeline} {status}>"


def _job_of(metadata: dict[str, Any] | None) -> str | None:
    for value in (metadata or {}).values():
        if isinstance(value, dict) and "Arn" in value:
            return str(value["Arn"])
    return None
