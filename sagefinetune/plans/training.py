"""Frozen plan objects: what will run, where, with what. Making a plan is pure: no I/O, no heavy imports."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.entrypoint.contract import label_key, metric_regex, render_hyperparameter
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ConfigError
from sagefinetune.facts.defaults import choose as choose_defaults
from sagefinetune.facts.models import model_source
from sagefinetune.plans.hyperparameters import check_with_labels, early_stopping_note

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.cost.estimate import Estimate
    from sagefinetune.cost.length import MaxLength
    from sagefinetune.cost.local_speed import LocalSpeed
    from sagefinetune.cost.search import SetupSearch
    from sagefinetune.data.report import DataReport
    from sagefinetune.job import Job
    from sagefinetune.plans.sagemaker import SageMakerSpec
    from sagefinetune.plans.tracking import TrackingSpec

__all__ = ["TrainingPlan", "MetricDefinition", "make_plan", "check_train_rows", "METRICS"]

#: The metrics SageMaker reads from the entry point's metric lines (the last value of each series is final).
METRICS = (
    "loss", "learning_rate", "grad_norm", "epoch", "eval_loss", "eval_accuracy", "eval_f1", "eval_precision",
    "eval_recall", "eval_mcc", "eval_f1_micro", "eval_f1_macro", "train_runtime", "train_samples_per_second",
    "train_loss",
)


@dataclass(frozen=True)
class MetricDefinition:
    """A SageMaker metric definition: the name and the regex that reads its value from the log."""

    name: str
    regex: str


@dataclass(frozen=True)
class TrainingPlan:
    """Everything that will run, decided before anything runs.

    ``str(plan)`` is a compact table; :meth:`to_dict` is the same as data. A plan chosen by
    ``job.plan(deadline=..., budget=...)`` carries its ``search`` (see :attr:`candidates`).
    """

    job_name: str
    backend: str  # "local" | "sagemaker"
    instance: str
    nodes: int
    processes_per_node: int
    model: str
    dataset: str
    labels: tuple[str, ...] | None
    problem_type: str | None
    hyperparameters: Mapping[str, str]
    metric_definitions: tuple[MetricDefinition, ...]
    sagemaker: SageMakerSpec | None = None
    notes: tuple[str, ...] = field(default=())
    estimate: Estimate | None = None
    search: SetupSearch | None = None
    tracking: TrackingSpec | None = None  # job.track(...): where the run logs params, curves, metrics, artifacts
    length: MaxLength | None = None  # max_length: how it was chosen, the share of train rows it cuts
    report: DataReport | None = None  # the rows as far as they are cheap to read: splits, labels, texts, duplicates

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def candidates(self) -> pd.DataFrame | None:
        """Every setup the search tried, one row each: instance, nodes, gpus, spot, seconds, cost, meets, chosen,
        why_not; ``None`` for a plan not chosen by a search (``job.plan(deadline=..., budget=...)``)."""
        return self.search.table() if self.search is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "backend": self.backend,
            "instance": self.instance,
            "nodes": self.nodes,
            "processes_per_node": self.processes_per_node,
            "model": self.model,
            "dataset": self.dataset,
            "labels": list(self.labels) if self.labels else None,
            "problem_type": self.problem_type,
            "hyperparameters": dict(self.hyperparameters),
            "metric_definitions": [{"Name": m.name, "Regex": m.regex} for m in self.metric_definitions],
            "sagemaker": self.sagemaker.to_dict() if self.sagemaker is not None else None,
            "notes": list(self.notes),
            "estimate": self.estimate.to_dict() if self.estimate is not None else None,
            "search": self.search.to_dict() if self.search is not None else None,
            "tracking": self.tracking.to_dict() if self.tracking is not None else None,
            "max_length": self.length.to_dict() if self.length is not None else None,
            "data_report": self.report.to_dict() if self.report is not None else None,
        }

    def __str__(self) -> str:
        where = "this machine (no Docker)" if self.backend == "local" else f"SageMaker {self.instance}"
        lines = [
            f"TrainingPlan {self.job_name}",
            f"  where        {where}: {self.nodes} node(s) x {self.processes_per_node} process(es)",
            *([f"  run folder   {run_folder_pattern(self.job_name)} (fit(run_dir=...) picks another)"]
              if self.backend == "local" else []),
            f"  model        {self.model}",
            f"  data         {self.dataset}",
            f"  labels       {list(self.labels) if self.labels else '(inferred from the data at fit)'}"
            + (f" [{self.problem_type}]" if self.problem_type else ""),
            "  hyperparams  " + " ".join(f"{k}={v}" for k, v in self.hyperparameters.items()
                                         if k not in ("labels", "problem_type", "model_name_or_path")),
        ]
        if self.report is not None:
            lines += [f"  {'data report' if i == 0 else '':<12} {line}" for i, line in enumerate(self.report.lines())]
            lines += [f"  warning      {w}" for w in self.report.warnings(plan=True)]
        if self.tracking is not None:
            lines.append(self.tracking.line())
        if self.length is not None:
            lines.append(f"  max_length   {self.length.line()}")
        if self.sagemaker is not None:
            lines += self.sagemaker.lines()
        if self.estimate is not None:
            lines += self.estimate.lines()
        if self.search is not None:
            lines += self.search.lines()
        lines += [f"  note         {n}" for n in self.notes]
        return redact("\n".join(lines))

    def __repr__(self) -> str:
        return redact(f"<TrainingPlan {self.job_name} {self.backend} {self.instance} x{self.nodes} model={self.model}>")


def job_name(job: Job) -> str:
    """``sft-<model>``: the deterministic base of job names; a launch appends its time (<= 63 chars in all)."""
    model = re.sub(r"[^a-zA-Z0-9]+", "-", job.model_id.rstrip("/").rsplit("/", 1)[-1]).strip("-").lower()[:30]
    return f"sft-{model or 'model'}"


def check_job_name(name: Any) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,47}", name):
        raise ConfigError(f"job_name={name!r} must be 1-48 letters, digits and '-' (a launch time is appended). "
                          "Fix: job_name='reviews-minilm'.")
    return name


def launch_name(base: str, now: float | None = None) -> str:
    """A unique run name: the base and the UTC launch time."""
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}"


def run_folder_pattern(job_name: str) -> str:
    """The folder a local ``fit()`` without ``run_dir`` makes, as a plan shows it before the launch time is known.

        >>> run_folder_pattern("sft-all-minilm-l6-v2")
        'sft-runs/sft-all-minilm-l6-v2-<UTC launch time, YYYYMMDD-HHMMSS>'
    """
    return f"sft-runs/{job_name}-<UTC launch time, YYYYMMDD-HHMMSS>"


def render_hyperparameters(job: Job, remote: bool = False, length: MaxLength | None = None) -> dict[str, str]:
    """SageMaker hyperparameters (strings only) from the Job; the entry point parses them back.

    Args:
        remote: for a SageMaker job, where a local model folder is the model channel, not a path.
        length: the max_length chosen for ``max_length="auto"`` (default: :func:`~sagefinetune.cost.length.plan_length`).
    """
    folder = model_source(job.model_id) == "folder"  # on SageMaker it travels as the model channel
    hp: dict[str, Any] = {"model_name_or_path": Path(job.model_id).name if folder and remote else job.model_id}
    if job.model_config:
        hp["config_overrides"] = dict(job.model_config)
    if job.reinitialize:
        hp["reinitialize"] = True
    if job.label_map is not None:
        hp["labels"] = list(job.label_map.names_)
        hp["problem_type"] = job.label_map.problem_type
    if job.dataset.text_pair:
        hp["text_pair_column"] = "text_pair"
    if job.dataset.is_remote:  # from_s3 files keep their own column names and raw label values
        hp["text_column"] = job.dataset.text
        hp["label_column"] = job.dataset.label
        if job.label_map is not None:
            hp["label_mapping"] = {label_key(k): v for k, v in job.label_map.mapping.items()}
        if job.dataset.text_pair:
            hp["text_pair_column"] = job.dataset.text_pair
    hp.update(choose_defaults(job).values)  # learning rate and warmup for the model's size, where the user set none
    hp.update({k: v for k, v in job.hyperparameters_.items() if v is not None})  # None: the entry point's default
    if hp.get("max_length") == "auto":  # chosen from the train rows' token lengths (and again at fit)
        from sagefinetune.cost.length import ASSUMED, plan_length

        chosen = length or plan_length(job)
        hp["max_length"] = chosen.value if chosen is not None else ASSUMED
    rendered = {k: render_hyperparameter(v) for k, v in hp.items()}
    too_long = {k: len(v) for k, v in rendered.items() if len(v) > 2500}
    if too_long:
        raise ConfigError(f"SageMaker limits a hyperparameter to 2500 characters; {too_long} are longer. "
                          "Fix: fewer or shorter class names.")
    return rendered


def metric_definitions() -> tuple[MetricDefinition, ...]:
    return tuple(MetricDefinition(name, metric_regex(name)) for name in METRICS)


def check_train_rows(train_rows: Any) -> int | None:
    """``train_rows``: None (rows read or known from the data) or a whole number of rows >= 1."""
    if train_rows is not None and (isinstance(train_rows, bool) or not isinstance(train_rows, int) or train_rows < 1):
        raise ConfigError(f"train_rows must be a whole number of rows >= 1; got train_rows={train_rows!r}. "
                          "Fix: plan(..., train_rows=100_000).")
    return train_rows


def _estimate_options(options: dict[str, Any]) -> tuple[int | None, bool, LocalSpeed | None]:
    """Pop and check the options that shape the estimate (they apply locally and on SageMaker)."""
    train_rows = check_train_rows(options.pop("train_rows", None))
    scale_lr = options.pop("scale_lr", False)
    if not isinstance(scale_lr, bool):
        raise ConfigError(f"scale_lr must be True or False; got {scale_lr!r}.")
    speed = options.pop("local_speed", None)
    if speed is not None and not hasattr(speed, "step_s"):
        raise ConfigError(f"local_speed must come from sft.measure_speed(job); got {type(speed).__name__}.")
    return train_rows, scale_lr, speed


def _world(instance: str, nodes: int) -> int:
    if instance == "local":
        return nodes
    from sagefinetune.facts.instances import lookup

    return lookup(instance).gpus * nodes


def _scale_learning_rate(hyperparameters: dict[str, str], world: int) -> str:
    from sagefinetune.cost.estimate import scaled_learning_rate
    from sagefinetune.entrypoint.contract import parse_hyperparameters

    lr = parse_hyperparameters(hyperparameters)["learning_rate"]
    scaled = scaled_learning_rate(lr, world)
    hyperparameters["learning_rate"] = render_hyperparameter(scaled)
    return (f"scale_lr: learning_rate {lr:g} x sqrt({world}) = {scaled:.3g} for a global batch {world}x the one it "
            "was set for")


def make_plan(job: Job, *, instance: str = "local", nodes: int = 1, **options: Any) -> TrainingPlan:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ConfigError(f"nodes must be a whole number >= 1; got nodes={nodes!r}. Fix: .fit(..., nodes=1).")
    if not isinstance(instance, str) or not instance:
        raise ConfigError(f"instance must be 'local' or a SageMaker instance type; got {instance!r}. "
                          "Fix: instance='local' or instance='ml.g5.xlarge'.")
    train_rows, scale_lr, speed = _estimate_options(options)
    from sagefinetune.data.column_choice import resolve_columns

    dataset, chosen = resolve_columns(job.dataset)  # local data's header checked; columns not named chosen from it
    job = replace(job, dataset=dataset)
    plan = _make_plan(job, instance, nodes, scale_lr, options)
    if chosen:
        plan = replace(plan, notes=(chosen, *plan.notes))
    from sagefinetune.data.report import plan_report

    plan = replace(plan, report=plan_report(job.dataset))
    if job.tracking is not None:  # a SageMaker job cannot write into a store on this machine: refused here
        from sagefinetune.plans.tracking import tracking_spec

        isolated = plan.sagemaker is not None and plan.sagemaker.network_isolation
        plan = replace(plan, tracking=tracking_spec(job.tracking, plan.backend, network_isolation=isolated))
    from sagefinetune.cost.estimate import estimate_plan

    return replace(plan, estimate=estimate_plan(job, plan, train_rows=train_rows, local_speed=speed, scale_lr=scale_lr))


def _make_plan(job: Job, instance: str, nodes: int, scale_lr: bool, options: dict[str, Any]) -> TrainingPlan:
    from sagefinetune.cost.length import plan_length

    length = plan_length(job)  # max_length="auto" becomes a number here (and again, from the rows, at fit)
    hyperparameters = render_hyperparameters(job, remote=instance != "local", length=length)
    if job.label_map is not None:
        check_with_labels(job.hyperparameters_, job.label_map)
    chosen = tuple(n for n in (choose_defaults(job).why, early_stopping_note(job)) if n)
    world = _world(instance, nodes) if scale_lr else 1
    scaled = (_scale_learning_rate(hyperparameters, world),) if world > 1 else ()
    name = check_job_name(options.pop("job_name", None) or job_name(job))
    common: dict[str, Any] = dict(
        job_name=name,
        model=job.model_id,
        dataset=repr(job.dataset),
        labels=tuple(job.label_map.names_) if job.label_map else None,
        problem_type=job.label_map.problem_type if job.label_map else None,
        hyperparameters=MappingProxyType(hyperparameters),
        metric_definitions=metric_definitions(),
        length=length,
    )
    if instance == "local":
        if options:
            from sagefinetune.plans.sagemaker import check_options

            check_options(options)  # a hyperparameter given as an option is pointed to .hyperparameters()
            raise ConfigError(f"options {sorted(options)} apply to SageMaker jobs, not to instance='local'. "
                              "Fix: drop them, or name a SageMaker instance type such as 'ml.g5.xlarge'.")
        if job.dataset.is_remote:
            raise ConfigError("from_s3 data cannot be trained on locally (it is read by SageMaker in place). "
                              "Fix: name a SageMaker instance, or use local files.")
        notes = ("nodes=%d: %d worker processes on this machine (torch.distributed, gloo)" % (nodes, nodes),) if nodes > 1 else ()
        return TrainingPlan(backend="local", instance="local", nodes=1, processes_per_node=nodes,
                            notes=notes + chosen + scaled + tuple(job.dataset.notes()), **common)
    from sagefinetune.plans.sagemaker import sagemaker_spec

    spec, processes = sagemaker_spec(job, instance=instance, nodes=nodes, hyperparameters=hyperparameters,
                                     job_name=name, **options)
    return TrainingPlan(backend="sagemaker", instance=instance, nodes=nodes, processes_per_node=processes,
                        sagemaker=spec, notes=chosen + scaled + tuple(job.dataset.notes()),
                        **common)
