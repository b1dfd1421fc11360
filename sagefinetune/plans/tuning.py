"""A study decided before anything runs (pure): :class:`TuningPlan`, the objectives a study can optimise, the grid of a
grid search and the baseline trial's values."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ConfigError, did_you_mean
from sagefinetune.plans.space import Choice, IntRange, Range

if TYPE_CHECKING:
    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["TuningPlan", "FINAL_METRICS", "check_objective", "grid_points", "baseline_values"]

#: The final metrics of the entry point, by problem type: what a study can optimise.
FINAL_METRICS: Mapping[str, tuple[str, ...]] = {
    "single_label_classification": ("eval_f1", "eval_accuracy", "eval_mcc", "eval_precision", "eval_recall", "eval_loss"),
    "multi_label_classification": ("eval_f1_micro", "eval_f1_macro", "eval_subset_accuracy", "eval_precision_micro",
                                   "eval_recall_micro", "eval_loss"),
}
RUNNING_AVERAGES = ("loss", "train_loss", "learning_rate", "grad_norm", "epoch")


@dataclass(frozen=True)
class TuningPlan:
    """A study, decided before anything runs: the trials' plan, the space, the objective, the budget and its cost.

    ``str(plan)`` is a compact table; :meth:`to_dict` is the same as data. The cost is per trial times the trials: the
    estimate's time when the plan carries one, else the ceiling at ``max_run``.
    """

    trial_plan: TrainingPlan
    space: Mapping[str, Range]
    objective: str
    direction: str
    trials: int
    parallel: int
    strategy: str
    pruner: str | None
    seed: int
    baseline: bool
    threads_per_trial: int | None
    max_epochs: int
    notes: tuple[str, ...] = field(default=())

    @property
    def backend(self) -> str:
        return self.trial_plan.backend

    def cost(self) -> dict[str, float | None]:
        """USD: ``per_trial`` and ``total`` (from the estimate, when there is one), and the ``ceiling`` at max_run."""
        spec = self.trial_plan.sagemaker
        if spec is None:
            return {"per_trial": 0.0, "total": 0.0, "ceiling": 0.0, "hourly": 0.0}
        estimate = getattr(self.trial_plan, "estimate", None)
        per_trial = getattr(estimate, "cost", None)
        return {"per_trial": per_trial, "total": per_trial * self.trials if per_trial is not None else None,
                "ceiling": spec.cost.max_usd * self.trials, "hourly": spec.cost.hourly_usd * self.parallel}

    def to_dict(self) -> dict[str, Any]:
        return {"trial_plan": self.trial_plan.to_dict(), "space": {k: repr(v) for k, v in self.space.items()},
                "objective": self.objective, "direction": self.direction, "trials": self.trials,
                "parallel": self.parallel, "strategy": self.strategy, "pruner": self.pruner, "seed": self.seed,
                "baseline": self.baseline, "threads_per_trial": self.threads_per_trial, "cost": self.cost(),
                "notes": list(self.notes)}

    def __str__(self) -> str:
        where = ("this machine: Optuna, each trial the local backend" if self.backend == "local"
                 else f"SageMaker hyperparameter tuning job on {self.trial_plan.instance}")
        stop = self.pruner or ("hyperband" if self.strategy == "hyperband" else "none")
        lines = [
            f"TuningPlan for {self.trial_plan.job_name}",
            f"  runner       {where}",
            f"  objective    {self.direction} {self.objective} (the final evaluation); stopping early: {stop}",
            f"  trials       {self.trials}, {self.parallel} at once, strategy {self.strategy}, seed {self.seed}"
            + (f", {self.threads_per_trial} thread(s) each" if self.threads_per_trial else ""),
            "  space        " + ", ".join(f"{k}={v!r}" for k, v in self.space.items()),
        ]
        cost = self.cost()
        if self.backend == "sagemaker":
            each = (f"${cost['per_trial']:.2f} per trial x {self.trials} = ${cost['total']:.2f} estimated; "
                    if cost["per_trial"] is not None else "")
            lines.append(f"  total cost   {each}at most ${cost['ceiling']:.2f} ({self.trials} trials x max_run); "
                         f"${cost['hourly']:.2f}/h while {self.parallel} run at once")
        lines += [f"  note         {n}" for n in self.notes]
        lines += ["  each trial:"] + ["  " + line for line in str(self.trial_plan).splitlines()]
        return redact("\n".join(lines))


def check_objective(objective: Any, direction: str | None, problem_type: str | None) -> str:
    """The objective's name and its direction (``eval_loss`` is minimised, scores maximised)."""
    known = sorted({m for names in FINAL_METRICS.values() for m in names})
    if not isinstance(objective, str) or objective not in known:
        why = (" is logged while training (a running value), not by the final evaluation"
               if objective in RUNNING_AVERAGES else " is not a final metric of the entry point")
        raise ConfigError(f"objective={objective!r}{why}{did_you_mean(str(objective), known)} "
                          f"Fix: one of {', '.join(known)}.")
    if problem_type is not None and objective not in FINAL_METRICS[problem_type]:
        raise ConfigError(f"objective={objective!r} is not reported for {problem_type} jobs. "
                          f"Fix: one of {', '.join(FINAL_METRICS[problem_type])}.")
    natural = "minimize" if objective == "eval_loss" else "maximize"
    if direction is None:
        return natural
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"direction must be 'maximize' or 'minimize'; got {direction!r}.")
    if direction != natural:
        raise ConfigError(f"direction={direction!r} would look for the worst {objective}. "
                          f"Fix: direction={natural!r} (or leave it out).")
    return direction


def grid_points(space: Mapping[str, Range]) -> list[dict[str, Any]]:
    """Every combination of a grid's values, in the order given (``Choice`` values, ``IntRange`` steps)."""
    names = list(space)
    axes = []
    for name in names:
        rng = space[name]
        if isinstance(rng, Choice):
            axes.append(list(rng.values))
        elif isinstance(rng, IntRange):
            axes.append(rng.values())
        else:
            raise ConfigError(f"strategy='grid' tries every value, so it needs Choice or IntRange; {name} is {rng!r}. "
                              "Fix: Choice([...]) of the values to try, or strategy='bayesian'.")
    return [dict(zip(names, combo)) for combo in itertools.product(*axes)]


def baseline_values(job: Job, space: Mapping[str, Range]) -> dict[str, Any]:
    """The job's own values of the searched hyperparameters: trial 0 with ``baseline=True``. Values the user left unset
    are those the plan would choose (the learning rate for the model's size), else the entry point's defaults."""
    from sagefinetune.entrypoint.contract import HYPERPARAMETERS
    from sagefinetune.facts.defaults import choose

    chosen = choose(job).values
    values = {n: job.hyperparameters_.get(n, chosen.get(n, HYPERPARAMETERS[n].default)) for n in space}
    for name, value in values.items():
        rng = space[name]
        inside = (value in rng.values if isinstance(rng, Choice)
                  else rng.low <= value <= rng.high)
        if not inside:
            raise ConfigError(f"baseline=True runs the job's own {name}={value!r} first, but it is outside {rng!r}. "
                              f"Fix: widen the range, or baseline=False.")
    return values
