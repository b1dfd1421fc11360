"""Plain records the backends return: a run's outcome and what it cost, a registered model version. The fluent
:class:`~sagefinetune.TrainingRun` wraps a :class:`RunRecord` and adds what can be done with it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import ConfigError

if TYPE_CHECKING:
    from sagefinetune.plans.tracking import Tracking
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["Cost", "RunRecord", "ModelVersion"]


@dataclass(frozen=True)
class Cost:
    """What a run cost: ``billable_seconds / 3600 x price_per_hour x nodes``."""

    usd: float
    billable_seconds: float = 0.0
    price_per_hour: float = 0.0
    nodes: int = 1
    source: str = "local run: no charge"

    def __str__(self) -> str:
        if not self.price_per_hour:
            return f"${self.usd:.2f} ({self.source})"
        return (f"${self.usd:.2f} = {self.billable_seconds:.0f} s x ${self.price_per_hour:.4f}/h x {self.nodes} node(s) "
                f"({self.source})")


@dataclass
class RunRecord:
    """A training run as a backend reports it (local: its run folder; SageMaker: DescribeTrainingJob).

    Attributes:
        name: the job name.
        backend: ``"local"`` or ``"sagemaker"``.
        metrics: the final value of each metric, e.g. ``{"eval_accuracy": 0.95, "eval_f1": 0.95, ...}``.
        cost: a :class:`Cost`.
        run_dir: local runs: the run folder (input/, model/, output/, checkpoints/, train.log).
        tracking: where the run is tracked (``job.track(...)``): a :class:`~sagefinetune.plans.tracking.Tracking` with the
            tracking URI, the experiment and the MLflow run id; None when the job is not tracked.
    """

    name: str
    backend: str
    metrics: dict[str, float] = field(default_factory=dict)
    cost: Cost = field(default_factory=lambda: Cost(0.0))
    run_dir: Path | None = None
    plan: TrainingPlan | None = None
    status: str = "Completed"
    model_artifact: str | None = None  # s3:// URI of model.tar.gz (SageMaker)
    training_seconds: float | None = None
    billable_seconds: float | None = None
    description: dict[str, Any] = field(default_factory=dict, repr=False)  # DescribeTrainingJob (SageMaker)
    model_folder: Path | None = field(default=None, repr=False)  # the local model folder, once there is one
    tracking: Tracking | None = None  # job.track(...): the MLflow run

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, plan: TrainingPlan | None = None) -> RunRecord:
        """A local run's outcome, read back from its run folder."""
        run_dir = Path(run_dir)
        model_dir = run_dir / "model"
        metrics_path = model_dir / "metrics.json"
        if not metrics_path.exists():
            raise ConfigError(f"{run_dir} holds no finished run ({metrics_path} is missing). "
                              "Fix: run job.fit(run_dir=...) to finish or resume it.")
        metrics = json.loads(metrics_path.read_text())
        return cls(name=plan.job_name if plan else run_dir.name, backend="local", metrics=metrics, run_dir=run_dir,
                   plan=plan, model_folder=model_dir)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model.

    Attributes:
        group: the model group (a folder here, a model package group on SageMaker).
        version: 1, 2, ... in registration order.
        status: ``PendingManualApproval``, ``Approved`` or ``Rejected``.
        metrics: the evaluation step's metrics (``eval_f1``, ``eval_accuracy``, ...).
        labels: the class names, in id order.
        model: the model folder (here) or the ``s3://.../model.tar.gz`` (SageMaker).
        inference_image: the Hugging Face inference image paired with the training image.
        created: when it was registered (UTC, ISO 8601).
        source: where it came from (pipeline, run or training job, data hash).
        arn: the model package ARN (SageMaker).
    """

    group: str
    version: int
    status: str
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    labels: tuple[str, ...] = ()
    model: str = ""
    inference_image: str | None = None
    created: str = ""
    source: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out.update(metrics=dict(self.metrics), labels=list(self.labels), source=dict(self.source))
        return out

    def __repr__(self) -> str:
        shown = {k: round(v, 4) for k, v in self.metrics.items() if k in ("eval_accuracy", "eval_f1", "eval_f1_micro")}
        return f"<ModelVersion {self.group} v{self.version} {self.status} {shown}>"
