"""A SageMaker hyperparameter tuning job over the same ModelTrainer that ``fit()`` launches (sagemaker SDK v3).

The search space maps to SageMaker's parameter types: :class:`~sagefinetune.LogUniform` to a continuous range with
logarithmic scaling, :class:`~sagefinetune.Uniform` to a linear one, :class:`~sagefinetune.IntRange` to an integer
range, :class:`~sagefinetune.Choice` to a categorical one whose values are rendered as the entry point reads them
(``contract.render_hyperparameter``). The objective's regex is the entry point's metric-line regex, the same generator
as the training metric definitions: SageMaker reads every per-epoch evaluation (for early stopping and Hyperband)
and takes the last value, the final evaluation, as the trial's objective.

Trials share the checkpoint URI of the tuning job; the entry point keeps each trial in its own sub-folder (its
training job's name), so a spot trial that is interrupted resumes itself.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.backends.sagemaker.training import TERMINAL, SageMakerBackend
from sagefinetune.core.console import say
from sagefinetune.entrypoint import contract
from sagefinetune.entrypoint.contract import render_hyperparameter
from sagefinetune.errors import TrainingError
from sagefinetune.plans.space import Choice, IntRange, LogUniform, Range
from sagefinetune.plans.tuning import TuningPlan, check_objective

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.job import Job

STRATEGY = {"bayesian": "Bayesian", "random": "Random", "grid": "Grid", "hyperband": "Hyperband"}


def tuning_job_name(job_name: str, now: float | None = None) -> str:
    """SageMaker allows 32 characters: the job's base (cut) and the launch time to the second."""
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime(now))
    return f"{job_name[:32 - len(stamp) - 1].rstrip('-')}-{stamp}"


def parameter_ranges(space: dict[str, Range] | Any) -> dict[str, Any]:
    """The space as the SDK's parameter ranges, every value rendered as the entry point reads it."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    out: dict[str, Any] = {}
    for name, rng in space.items():
        if isinstance(rng, Choice):
            out[name] = CategoricalParameter([render_hyperparameter(v) for v in rng.values])
        elif isinstance(rng, IntRange):
            out[name] = IntegerParameter(str(rng.low), str(rng.high), "Logarithmic" if rng.log else "Linear")
        else:
            out[name] = ContinuousParameter(render_hyperparameter(rng.low), render_hyperparameter(rng.high),
                                            "Logarithmic" if isinstance(rng, LogUniform) else "Linear")
    return out


def metric_definitions(plan: TuningPlan) -> list[dict[str, str]]:
    """The training job's metric definitions, and the objective's when it is not among them (same regex generator)."""
    defs = [{"Name": m.name, "Regex": m.regex} for m in plan.trial_plan.metric_definitions]
    if plan.objective not in {d["Name"] for d in defs}:
        defs.append({"Name": plan.objective, "Regex": contract.metric_regex(plan.objective)})
    return defs


def _tuner(trainer: Any, plan: TuningPlan) -> Any:
    from sagemaker.core.shapes import HyperbandStrategyConfig, HyperParameterTuningJobStrategyConfig
    from sagemaker.train.tuner import HyperparameterTuner

    strategy_config = None
    if plan.strategy == "hyperband":
        strategy_config = HyperParameterTuningJobStrategyConfig(
            hyperband_strategy_config=HyperbandStrategyConfig(min_resource=1, max_resource=plan.max_epochs))
    return HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=plan.objective,
        objective_type="Maximize" if plan.direction == "maximize" else "Minimize",
        hyperparameter_ranges=parameter_ranges(plan.space),
        metric_definitions=metric_definitions(plan),
        strategy=STRATEGY[plan.strategy],
        strategy_config=strategy_config,
        max_jobs=plan.trials,
        max_parallel_jobs=plan.parallel,
        early_stopping_type="Auto" if plan.pruner == "median" else "Off",
        random_seed=plan.seed if plan.strategy != "grid" else None,
    )


def launch_tuning(backend: SageMakerBackend, job: Job, plan: TuningPlan, *, progress: bool = True,
                  wait: bool = True) -> dict[str, Any]:
    """Check, upload, create the tuning job; follow it when ``wait``; return its description (what it found so far)."""
    trial_plan = plan.trial_plan
    launch = backend.prepare_launch(job, trial_plan, progress=progress)
    check_objective(plan.objective, plan.direction, launch.hyperparameters.get("problem_type"))  # the labels' type
    name = tuning_job_name(trial_plan.job_name)
    checkpoint = launch.checkpoint.rstrip("/") + f"/{name}/"  # each trial keeps to <checkpoint>/<its job name>/
    trial_plan = replace(trial_plan, job_name=name)
    with tempfile.TemporaryDirectory(prefix="sagefinetune-src-") as source_dir:
        trainer = backend.model_trainer(trial_plan, launch.session, launch.role, launch.hyperparameters,
                                         launch.bucket, checkpoint, source_dir)
        tuner = _tuner(trainer, plan)
        with aws_errors("CreateHyperParameterTuningJob"):
            tuner.tune(inputs=launch.inputs, job_name=name, wait=False)
    say(f"launched SageMaker tuning job {name}: {plan.trials} trials, {plan.parallel} at once on {trial_plan.instance}"
         f"{', spot' if trial_plan.sagemaker and trial_plan.sagemaker.spot else ''}", progress)
    return follow(backend, name, progress=progress) if wait else describe(backend, name)


def describe(backend: SageMakerBackend, name: str) -> dict[str, Any]:
    with aws_errors("DescribeHyperParameterTuningJob"):
        return dict(backend.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))


def follow(backend: SageMakerBackend, name: str, *, progress: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Poll the tuning job to its end, showing its trial counts as they change; raise if it failed."""
    started, shown = time.time(), ""
    while True:
        d = describe(backend, name)
        counts = d.get("TrainingJobStatusCounters") or {}
        line = f"{name}: {d['HyperParameterTuningJobStatus']}; trials " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        if line != shown:
            say(line, progress)
            shown = line
        if d["HyperParameterTuningJobStatus"] in TERMINAL:
            break
        if timeout is not None and time.time() - started > timeout:
            break
        time.sleep(backend.poll_seconds)
    if d["HyperParameterTuningJobStatus"] == "Failed":
        reason = d.get("FailureReason") or "no reason given"
        raise TrainingError(f"SageMaker tuning job {name} failed: {reason}. Fix: read its trials' logs in CloudWatch "
                            "(/aws/sagemaker/TrainingJobs).", job_name=name, reason=reason)
    return d


def parse_tuned(plan: TuningPlan, tuned: dict[str, str]) -> dict[str, Any]:
    """A trial's tuned values (strings, as SageMaker reports them) as the typed values the Job takes."""
    parsed = contract.parse_hyperparameters({k: v for k, v in tuned.items() if k in plan.space})
    return {k: parsed[k] for k in plan.space if k in tuned}


def trials_table(plan: TuningPlan, summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial from ListTrainingJobsForHyperParameterTuningJob summaries."""
    import pandas as pd

    rows = []
    for s in summaries:
        final = (s.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
        start, end = s.get("TrainingStartTime"), s.get("TrainingEndTime")
        rows.append({"trial": s["TrainingJobName"], "state": _state(s), plan.objective: final,
                     **parse_tuned(plan, s.get("TunedHyperParameters") or {}),
                     "seconds": (end - start).total_seconds() if start and end else None,
                     "note": s.get("FailureReason", "")})
    return pd.DataFrame(rows).sort_values("trial", ignore_index=True) if rows else pd.DataFrame()


def _state(summary: dict[str, Any]) -> str:
    # a trial SageMaker stopped is one its early stopping (or Hyperband) gave up on, unless someone stopped it
    status = summary.get("TrainingJobStatus", "")
    return {"Completed": "complete", "Failed": "failed", "InProgress": "running", "Stopped": "pruned"}.get(status, status.lower())


def list_trials(backend: SageMakerBackend, plan: TuningPlan, name: str) -> pd.DataFrame:
    """Every trial of the tuning job ``name`` as a table (ListTrainingJobsForHyperParameterTuningJob, all pages)."""
    client, summaries, kwargs = backend.client("sagemaker"), [], {"HyperParameterTuningJobName": name}
    with aws_errors("ListTrainingJobsForHyperParameterTuningJob"):
        while True:
            page = client.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs, MaxResults=100)
            summaries += page.get("TrainingJobSummaries", [])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    return trials_table(plan, summaries)
