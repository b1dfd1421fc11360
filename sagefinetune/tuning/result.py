"""What a study will run (:class:`TuningPlan`, pure) and what it found (:class:`TuningResult`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.deps import require
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import TrainingError
from sagefinetune.plans.space import Choice, LogUniform, Range

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan
    from sagefinetune.run import TrainingRun

__all__ = ["TuningPlan", "TuningResult", "trials_table"]


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


@dataclass(frozen=True, eq=False)
class TuningResult:
    """The outcome of a study.

    Attributes:
        name: the study folder's name (local) or the tuning job's name (SageMaker).
        plan: the :class:`TuningPlan`.
        job: the Job that was tuned; :attr:`best_job` is it with the best values.
        status: ``Completed`` (or SageMaker's status of the tuning job).
        best_value: the best trial's objective.
        best_hyperparameters: the best trial's values of the searched hyperparameters.
        folder: local studies: the study folder (study.db, study.json, trial-NNN/).
    """

    name: str
    plan: TuningPlan
    job: Job
    status: str
    best_value: float | None
    best_hyperparameters: Mapping[str, Any]
    folder: Path | None = None
    _table: Callable[[], pd.DataFrame] | None = field(default=None, repr=False)
    _best_run: Callable[[], TrainingRun] | None = field(default=None, repr=False)
    _follow: Callable[[bool, float | None], TuningResult] | None = field(default=None, repr=False)

    def wait(self, *, progress: bool = True, timeout: float | None = None) -> TuningResult:
        """SageMaker: follow the tuning job to its end and return the result read again (a local study is done)."""
        return self._follow(progress, timeout) if self._follow is not None else self

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """One row per trial: its number, state, objective, the searched values, and more (pandas DataFrame)."""
        import pandas as pd

        return self._table() if self._table is not None else pd.DataFrame()

    @property
    def best_job(self) -> Job:
        """The tuned Job with the best trial's values: fit it again, on more data, or elsewhere."""
        self._need_best()
        return self.job.hyperparameters(**dict(self.best_hyperparameters))

    @functools.cached_property
    def best_run(self) -> TrainingRun:
        """The best trial's run: its model, metrics, curves and diagnosis."""
        self._need_best()
        assert self._best_run is not None
        return self._best_run()

    def _need_best(self) -> None:
        if self.best_value is None or self._best_run is None:
            raise TrainingError(f"study {self.name} has no finished trial yet (status {self.status}), so no best one. "
                                "Fix: read .table for what happened, then run the study again (it resumes).",
                                job_name=self.name)

    def plot(self, path: str | Path | None = None) -> Any:
        """The objective per trial (best so far as a line; pruned trials at their last evaluation), and the objective
        against each searched hyperparameter. Returns the matplotlib Figure (saved to ``path`` when given)."""
        require("matplotlib", "plot the study")
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        table, objective = self.table, self.plan.objective
        names = list(self.plan.space)
        fig = Figure(figsize=(4.2 * (1 + len(names)), 3.8))
        axes = fig.subplots(1, 1 + len(names), squeeze=False)[0]
        done = table[table["state"] == "complete"] if len(table) else table
        pruned = table[table["state"] == "pruned"] if len(table) else table
        ax = axes[0]
        ax.plot(done["trial"], done[objective], "o", label="complete")
        if len(pruned):
            ax.plot(pruned["trial"], pruned[objective], "x", color="tab:red", label="pruned (last evaluation)")
        if len(done):
            ordered = done.sort_values("trial")
            best = ordered[objective].cummax() if self.plan.direction == "maximize" else ordered[objective].cummin()
            ax.step(ordered["trial"], best, where="post", color="0.4", label="best so far")
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(objective)
        ax.set_title(f"{self.plan.direction} {objective}")
        for ax, name in zip(axes[1:], names):
            rng = self.plan.space[name]
            for part, style in ((done, "o"), (pruned, "x")):
                if len(part):  # Choice values as categories, in the order given
                    xs = part[name].map(rng.values.index) if isinstance(rng, Choice) else part[name]
                    ax.plot(xs, part[objective], style, color="tab:blue" if style == "o" else "tab:red")
            if isinstance(rng, Choice):
                ax.set_xticks(range(len(rng.values)), [str(v) for v in rng.values])
                ax.set_xlim(-0.5, len(rng.values) - 0.5)
            if isinstance(rng, LogUniform):
                ax.set_xscale("log")
            ax.set_xlabel(name)
        for ax in axes:
            ax.grid(alpha=0.3)
        if len(done):
            axes[0].legend(fontsize=7)
        fig.suptitle(f"study {self.name}: best {objective} {self._best_text()}")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def _best_text(self) -> str:
        if self.best_value is None or (isinstance(self.best_value, float) and math.isnan(self.best_value)):
            return "-"
        values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.best_hyperparameters.items())
        return f"{self.best_value:.4g}" + (f" at {values}" if values else "")

    def __repr__(self) -> str:
        return f"<TuningResult {self.name} {self.plan.backend} {self.status} best {self.plan.objective}={self._best_text()}>"


# ---- a local study's table (from Optuna's trials) --------------------------------------------------------------
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def trials_table(study: Any, plan: TuningPlan, gone: set[int]) -> pd.DataFrame:
    """An Optuna study's trials, one row each: number, state (``interrupted`` for those in ``gone``), objective (a
    pruned trial's last evaluation), the values, epochs run, seconds, the final metrics, the run folder."""
    import pandas as pd

    rows = []
    for t in study.trials:
        state = "interrupted" if t.number in gone else STATES.get(t.state.name, t.state.name.lower())
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                     if t.intermediate_values else None)
        seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                   if t.datetime_complete and t.datetime_start else None)
        rows.append({"trial": t.number, "state": state, plan.objective: value,
                     **{n: t.params.get(n) for n in plan.space},
                     "epochs": max(t.intermediate_values, default=None), "seconds": seconds,
                     **{k: v for k, v in t.user_attrs.get("metrics", {}).items() if k != plan.objective},
                     "note": t.user_attrs.get("note", ""), "run_dir": t.user_attrs.get("run_dir")})
    return pd.DataFrame(rows)
