"""Pipeline: train -> evaluate -> condition -> register (-> deploy), generated from a Job. Immutable; checked when made.

The same graph runs two ways: as a SageMaker pipeline (:meth:`Pipeline.definition`, :meth:`Pipeline.upsert`,
:meth:`Pipeline.start`) and on this machine (:meth:`Pipeline.run_local`, no Docker).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.local_registry import check_group, check_status
from sagefinetune.errors import ConfigError, did_you_mean
from sagefinetune.pipeline.conditions import Condition
from sagefinetune.pipeline.parameters import APPROVAL, DATA, DATA_LOCATION, INSTANCE

if TYPE_CHECKING:
    from sagefinetune.job import Job
    from sagefinetune.pipeline.execution import PipelineExecution
    from sagefinetune.pipeline.local import PipelineRun
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["Pipeline", "Deployment", "make_pipeline"]

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}")


@dataclass(frozen=True)
class Deployment:
    """Where an approved version is served: ``local``, a ``realtime`` instance, or ``serverless``."""

    kind: str
    instance: str | None = None
    instance_count: int = 1
    memory_mb: int = 3072
    max_concurrency: int = 5
    endpoint_name: str | None = None

    @staticmethod
    def parse(value: Any, pipeline: str) -> Deployment | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ConfigError(f"deploy must be None or a mapping; got {value!r}. Fix: deploy={{'instance': "
                              "'ml.m5.xlarge'}, deploy={'serverless': True} or deploy={'instance': 'local'}.")
        allowed = ("instance", "instance_count", "serverless", "memory_mb", "max_concurrency", "name")
        for key in value:
            if key not in allowed:
                raise ConfigError(f"unknown deploy option {key!r}{did_you_mean(str(key), allowed)} "
                                  f"Fix: one of {', '.join(allowed)}.")
        name = value.get("name") or pipeline[:63]
        if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name):
            raise ConfigError(f"deploy name {name!r} must be 1-63 letters, digits and '-'. Fix: deploy={{..., 'name': 'reviews'}}.")
        if value.get("serverless"):
            memory, concurrency = value.get("memory_mb", 3072), value.get("max_concurrency", 5)
            if memory not in range(1024, 6145, 1024):
                raise ConfigError(f"serverless memory_mb={memory!r} must be 1024..6144 in steps of 1024. Fix: 3072.")
            if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 200:
                raise ConfigError(f"serverless max_concurrency={concurrency!r} must be 1..200. Fix: 5.")
            return Deployment("serverless", None, 1, memory, concurrency, name)
        instance = value.get("instance")
        if instance != "local":
            from sagefinetune.facts.instances import lookup

            if not isinstance(instance, str):
                raise ConfigError(f"deploy needs an instance or serverless=True; got {dict(value)!r}. "
                                  "Fix: deploy={'instance': 'ml.m5.xlarge'}.")
            lookup(instance)  # unknown names stop here, with a suggestion
        count = value.get("instance_count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"deploy instance_count={count!r} must be a whole number >= 1. Fix: 1.")
        return Deployment("local" if instance == "local" else "realtime", instance, count, endpoint_name=name)

    @property
    def gpu(self) -> bool:
        if self.kind != "realtime" or self.instance is None:
            return False
        from sagefinetune.facts.instances import lookup

        return lookup(self.instance).gpus > 0

    def __str__(self) -> str:
        if self.kind == "serverless":
            return f"serverless {self.memory_mb} MB x{self.max_concurrency} as {self.endpoint_name}"
        return f"{self.instance} x{self.instance_count} as {self.endpoint_name}" if self.kind == "realtime" else "a local endpoint"


@dataclass(frozen=True, eq=False)
class Pipeline:
    """An MLOps pipeline generated from a Job: make it with :meth:`sagefinetune.Job.pipeline`.

    Steps: (``CheckData`` for ``from_s3`` data) -> ``Train`` (the very training job ``fit()`` launches, spot and
    checkpoints included) -> ``Evaluate`` (entrypoint/evaluation.py on the test split, writing ``evaluation.json``) ->
    ``Condition`` (every metric threshold) -> ``Register`` (the next version of the model group, with the metrics,
    labels, inference image and artifact; ``PendingManualApproval`` unless told otherwise) -> ``Deploy`` (optional,
    when the version is approved); when the condition fails, ``Fail`` with the reason.

    Example:
        >>> pipe = job.pipeline("news", instance="ml.g5.xlarge", condition={"eval_f1": 0.85}, register="news-models")
        >>> pipe.parameter_names
        ('DataLocation', 'InstanceType', 'MinEvalF1', 'ModelApprovalStatus')
    """

    name: str
    job: Job
    instance: str
    nodes: int
    conditions: tuple[Condition, ...]
    group: str
    approval: str = "PendingManualApproval"
    deploy: Deployment | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    boto_session: Any = field(default=None, repr=False)

    @cached_property
    def plan(self) -> TrainingPlan:
        """The training step's plan: the same as ``job.plan(instance, nodes, **options)`` (pure)."""
        return self.job.plan(instance=self.instance, nodes=self.nodes, **self.options)

    @property
    def data_parameters(self) -> tuple[str, ...]:
        """``DataLocation`` (a prefix with a folder per split) for data uploaded by upsert(); for ``from_s3`` data
        one parameter per channel: ``TrainData``, ``TestData`` (, ``ValidationData``)."""
        source = self.job.dataset
        if not source.is_remote:
            return (DATA_LOCATION,)
        names = {k for k, _ in source.source.kwargs}
        return tuple(DATA[s] for s in ("train", "validation", "test") if s in names)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The parameters a SageMaker execution takes: data location, instance type, thresholds, approval."""
        return (*self.data_parameters, INSTANCE, *(c.parameter for c in self.conditions), APPROVAL)

    # ---- SageMaker ---------------------------------------------------------------------------------------------
    def definition(self, *, role: str | None = None, bucket: str | None = None) -> str:
        """The SageMaker Pipelines definition (JSON), built with the SDK's workflow classes. No network.

        The data is read here to address it by content (the S3 prefixes upsert() uploads to). Without a role or a
        bucket the definition shows placeholders that :meth:`upsert` fills in.
        """
        from sagefinetune.pipeline.sagemaker import definition

        return definition(self, role=role, bucket=bucket)

    def upsert(self, role: str | None = None, *, description: str | None = None, boto_session: Any = None,
               progress: bool = True) -> dict[str, Any]:
        """Upload the data and code (once per content), create the model group, and create or update the pipeline.

        Returns:
            SageMaker's answer (``PipelineArn``).
        """
        from sagefinetune.pipeline.sagemaker import upsert

        return upsert(self, role=role, description=description, boto_session=boto_session or self.boto_session,
                      progress=progress)

    def start(self, parameters: Mapping[str, Any] | None = None, *, boto_session: Any = None) -> PipelineExecution:
        """Start an execution of the upserted pipeline; ``parameters`` override defaults (checked first).

        Example:
            >>> execution = pipe.start({"MinEvalF1": 0.9, "ModelApprovalStatus": "Approved"})  # doctest: +SKIP
            >>> execution.wait().status()  # doctest: +SKIP
            'Succeeded'
        """
        from sagefinetune.pipeline.sagemaker import start

        return start(self, self.check_parameters(parameters or {}), boto_session=boto_session or self.boto_session)

    def check_parameters(self, parameters: Mapping[str, Any], local: bool = False) -> dict[str, Any]:
        """Parameter values checked before anything starts: names, thresholds, approval, instance, S3 URIs."""
        from sagefinetune.pipeline.parameters import check_parameters

        return check_parameters(self, parameters, local=local)

    # ---- here ----------------------------------------------------------------------------------------------------
    def run_local(self, folder: str | Path | None = None, *, parameters: Mapping[str, Any] | None = None,
                  registry: str | Path | None = None, cache: bool = True, progress: bool = True) -> PipelineRun:
        """Run the same graph on this machine: train (the local backend), evaluate, condition, register, deploy.

        Args:
            folder: the pipeline's folder (default ``sft-pipelines/<name>``); each run is a folder in it. A run that
                did not finish is continued: steps that finished with the same inputs are not run again.
            parameters: ``MinEvalF1``, ``ModelApprovalStatus``: as for :meth:`start`.
            registry: the local registry folder (default ``sft-registry``).
            cache: reuse the train and evaluate steps of an earlier run with the same inputs (content hashes).
            progress: show the training progress bar.

        Raises:
            PipelineError: the condition was not met (which metric, by how much) or a step failed.
        """
        from sagefinetune.pipeline.local import run_local

        return run_local(self, folder=folder, parameters=self.check_parameters(parameters or {}, local=True),
                         registry=registry, cache=cache, progress=progress)

    def __str__(self) -> str:
        gate = " and ".join(str(c) for c in self.conditions)
        lines = [f"Pipeline {self.name}",
                 f"  steps      {'CheckData -> ' if self.job.dataset.is_remote else ''}Train -> Evaluate -> "
                 f"Condition ({gate}) -> Register ({self.group}, {self.approval})"
                 + (f" -> Deploy ({self.deploy}, when approved)" if self.deploy else "") + "; else Fail",
                 f"  training   {self.plan.instance} x{self.nodes}" + (" (run_local only)" if self.instance == "local" else ""),
                 f"  parameters {', '.join(self.parameter_names)}"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} {self.instance} {' and '.join(map(str, self.conditions))} -> {self.group}>"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"pipeline name {name!r} must be letters, digits and '-' (SageMaker's rule). "
                          "Fix: job.pipeline('reviews', ...).")
    return name


def make_pipeline(job: Job, name: str, *, instance: str = "local", nodes: int = 1, condition: Mapping[str, float],
                  register: str | None = None, deploy: Mapping[str, Any] | None = None,
                  approval: str = "PendingManualApproval", boto_session: Any = None, **options: Any) -> Pipeline:
    """Check everything that needs no I/O, then build the Pipeline (see :meth:`sagefinetune.Job.pipeline`)."""
    name = check_name(name)
    problem = job.label_map.problem_type if job.label_map is not None else None
    pipe = Pipeline(name=name, job=job, instance=instance, nodes=nodes, conditions=Condition.parse(condition, problem),
                    group=check_group(register if register is not None else name), approval=check_status(approval),
                    deploy=Deployment.parse(deploy, name), options=MappingProxyType(dict(options)),
                    boto_session=boto_session)
    _ = pipe.plan  # the training step's options are checked now, where the traceback points at the caller
    if job.dataset.is_remote and DATA["test"] not in pipe.data_parameters:
        raise ConfigError("the pipeline's evaluation step needs a test channel. "
                          "Fix: Dataset.from_s3(train='s3://...', test='s3://...').")
    return pipe
