"""Hyperparameter tuning: one search space, run by Optuna on this machine or by SageMaker's tuner on ``ml.*``.

    space = {"learning_rate": sft.LogUniform(1e-5, 3e-4), "batch_size": sft.Choice([16, 32])}
    print(job.tune_plan(space, trials=8, instance="ml.g5.xlarge"))      # pure: what would run, and its total cost
    tuned = job.tune(space, objective="eval_f1", trials=8, parallel=2)   # here: Optuna over the local backend
    tuned.table; tuned.best_hyperparameters; tuned.best_job; tuned.best_run; tuned.plot("tuning.png")

The objective is a final metric of the entry point: the evaluation after training ends (``eval_f1``, ``eval_loss``,
...), never a running average. Pruning and SageMaker's early stopping read the per-epoch evaluations of the same
metric. The result and the plan live in :mod:`sagefinetune.tuning.result`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import ConfigError, did_you_mean
from sagefinetune.plans.space import Choice, IntRange, LogUniform, Range, Uniform, check_space
from sagefinetune.plans.tuning import TuningPlan, baseline_values, check_objective, grid_points
from sagefinetune.tuning.result import TuningResult

if TYPE_CHECKING:
    from sagefinetune.job import Job

__all__ = ["tune", "make_tuning_plan", "STRATEGIES", "PRUNERS"]

STRATEGIES = ("bayesian", "random", "grid", "hyperband")
#: Pruners by name (this machine). SageMaker stops trials early with its own median rule: ``pruner="median"``.
PRUNERS = ("median", "successive_halving", "hyperband")


def _count(name: str, value: Any, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1; got {name}={value!r}. Fix: {fix}.")
    return value


def _check_strategy(strategy: Any, pruner: Any, backend: str) -> str | None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r} is not known{did_you_mean(str(strategy), STRATEGIES)} "
                          f"Fix: one of {', '.join(STRATEGIES)}.")
    if pruner is None:
        return None
    if strategy == "hyperband":
        raise ConfigError(f"strategy='hyperband' stops trials itself; got pruner={pruner!r} too. Fix: pruner=None.")
    if isinstance(pruner, str):
        if pruner not in PRUNERS:
            raise ConfigError(f"pruner={pruner!r} is not known{did_you_mean(pruner, PRUNERS)} "
                              f"Fix: one of {', '.join(PRUNERS)}, an optuna pruner, or None.")
        if backend == "sagemaker" and pruner != "median":
            raise ConfigError(f"SageMaker stops trials early with its own median rule only; got pruner={pruner!r}. "
                              "Fix: pruner='median' (early stopping 'Auto'), or strategy='hyperband'.")
        return pruner
    if backend == "sagemaker" or not hasattr(pruner, "prune"):
        raise ConfigError(f"pruner={pruner!r} must be one of {', '.join(PRUNERS)} (or, on this machine, an optuna pruner).")
    return type(pruner).__name__


def make_tuning_plan(job: Job, space: Mapping[str, Range], *, objective: str = "eval_f1", direction: str | None = None,
                     trials: int = 8, parallel: int = 2, instance: str = "local", nodes: int = 1,
                     strategy: str = "bayesian", pruner: Any = None, seed: int = 0, baseline: bool = False,
                     **options: Any) -> TuningPlan:
    """Check everything about a study and say what it will run and cost; pure: no I/O."""
    checked = check_space(space)
    problem = job.label_map.problem_type if job.label_map is not None else None
    direction = check_objective(objective, direction, problem)
    trials = _count("trials", trials, "trials=8")
    parallel = _count("parallel", parallel, "parallel=2")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0; got {seed!r}.")
    if not isinstance(baseline, bool):
        raise ConfigError(f"baseline must be True or False; got {baseline!r}.")
    trial_plan = job.plan(instance=instance, nodes=nodes, **options)
    pruner_name = _check_strategy(strategy, pruner, trial_plan.backend)
    notes: list[str] = []
    if strategy == "grid":
        if baseline:
            raise ConfigError("strategy='grid' already runs every combination; baseline=True would repeat one. "
                              "Fix: baseline=False.")
        points = len(grid_points(checked))
        if trials != points:
            notes.append(f"grid of {points} combinations: {min(trials, points)} trial(s) run")
        trials = min(trials, points)
    if baseline:
        if trial_plan.backend == "sagemaker":
            raise ConfigError("baseline=True runs the job's own values as trial 0, which SageMaker's tuner cannot be "
                              "told to do. Fix: baseline=False (fit the job once to compare).")
        notes.append("trial 0 runs the job's own " + ", ".join(f"{k}={v!r}" for k, v in baseline_values(job, checked).items()))
    parallel = min(parallel, trials)
    if trial_plan.backend == "sagemaker" and trial_plan.world_size > 1:
        notes.append(f"{trial_plan.world_size} processes per trial: a tuning job's trials start through the container's "
                     "own launcher, which this library has not verified for torchrun; one GPU per trial is the tested way")
    threads = None
    if trial_plan.backend == "local":
        cores = os.cpu_count() or 1
        threads = max(1, cores // (parallel * trial_plan.processes_per_node))
        if parallel * trial_plan.processes_per_node > cores:
            notes.append(f"{parallel} trials at once on {cores} core(s): each gets 1 thread and they compete")
    epochs_range = checked.get("epochs")
    epochs = float(job.hyperparameters_.get("epochs", 3))
    if isinstance(epochs_range, (IntRange, Uniform, LogUniform)):
        epochs = float(epochs_range.high)
    elif isinstance(epochs_range, Choice):
        epochs = float(max(epochs_range.values))
    return TuningPlan(trial_plan=trial_plan, space=checked, objective=objective, direction=direction, trials=trials,
                      parallel=parallel, strategy=strategy, pruner=pruner_name, seed=seed, baseline=baseline,
                      threads_per_trial=threads, max_epochs=max(1, math.ceil(epochs)), notes=tuple(notes))


def tune(job: Job, space: Mapping[str, Range], *, objective: str = "eval_f1", direction: str | None = None,
         trials: int = 8, parallel: int = 2, instance: str = "local", nodes: int = 1, strategy: str = "bayesian",
         pruner: Any = None, seed: int = 0, baseline: bool = False, run_dir: str | Path | None = None,
         progress: bool = True, wait: bool = True, boto_session: Any = None, **options: Any) -> TuningResult:
    """Run a study; see :meth:`Job.tune <sagefinetune.Job.tune>`."""
    plan = make_tuning_plan(job, space, objective=objective, direction=direction, trials=trials, parallel=parallel,
                            instance=instance, nodes=nodes, strategy=strategy, pruner=pruner, seed=seed,
                            baseline=baseline, **options)
    if plan.trial_plan.backend == "local":
        if boto_session is not None:
            raise ConfigError("boto_session applies to SageMaker tuning, not to instance='local'.")
        from sagefinetune.tuning.local import run_study

        return run_study(job, plan, run_dir=run_dir, progress=progress, pruner=pruner)
    if run_dir is not None:
        raise ConfigError("run_dir applies to local studies; a SageMaker tuning job keeps its trials in SageMaker. "
                          "Fix: drop run_dir.")
    from sagefinetune.backends.sagemaker.training import SageMakerBackend
    from sagefinetune.backends.sagemaker.tuning import launch_tuning

    spec = plan.trial_plan.sagemaker
    backend = SageMakerBackend(boto_session, region=spec.region if spec else None)
    return sagemaker_result(backend, job, plan, launch_tuning(backend, job, plan, progress=progress, wait=wait))


def sagemaker_result(backend: Any, job: Job, plan: TuningPlan, d: dict[str, Any]) -> TuningResult:
    """A SageMaker tuning job's description as a :class:`TuningResult`: its table, best run and wait() call down."""
    from sagefinetune.backends.sagemaker.tuning import follow, list_trials, parse_tuned
    from sagefinetune.run import TrainingRun

    name = d["HyperParameterTuningJobName"]
    best = d.get("BestTrainingJob") or {}
    best_name = best.get("TrainingJobName")
    value = (best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")

    def best_run() -> TrainingRun:
        return TrainingRun.from_record(backend.attach(best_name), backend)

    def again(progress: bool, timeout: float | None) -> TuningResult:
        return sagemaker_result(backend, job, plan, follow(backend, name, progress=progress, timeout=timeout))

    return TuningResult(name=name, plan=plan, job=job, status=d["HyperParameterTuningJobStatus"],
                        best_value=float(value) if value is not None else None,
                        best_hyperparameters=parse_tuned(plan, best.get("TunedHyperParameters") or {}),
                        _table=lambda: list_trials(backend, plan, name), _best_run=best_run if best_name else None,
                        _follow=again)
