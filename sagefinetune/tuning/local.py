"""A study on this machine: Optuna chooses the values, the local backend trains each trial in its own run folder.

    <study folder>/
      study.db          Optuna's storage (SQLite): a study stopped and run again resumes; finished trials stay
      study.json        what the study is (job, space, objective): another study cannot resume in this folder
      trial-000/ ...    each trial's run folder (input/, model/, train.log); pruned ones hold pruned.json; its
                        checkpoints/ only while it can still resume (a finished trial's are deleted)

Trials run through :class:`~sagefinetune.backends.local.LocalBackend` (the same entry point as every fit), at most
``parallel`` at once, the cores split between them. Each per-epoch evaluation of the objective is reported to the
trial as its line appears; a pruner that says stop ends the trial's process. An interrupted trial (Ctrl-C, a killed
process) is run again in its own folder and resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.deps import require
from sagefinetune.entrypoint import contract
from sagefinetune.errors import ConfigError, SagefinetuneError, TrainingError
from sagefinetune.plans.space import Choice, IntRange, LogUniform, Range
from sagefinetune.plans.tuning import TuningPlan
from sagefinetune.tuning.result import TuningResult, trials_table

if TYPE_CHECKING:
    import optuna

    from sagefinetune.job import Job

STUDY_NAME = "sagefinetune"


@dataclass
class Outcome:
    state: str  # complete | pruned | failed | interrupted
    value: float | None = None
    note: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


def distributions(space: dict[str, Range] | Any) -> dict[str, Any]:
    """Optuna distributions of the space."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, rng in space.items():
        if isinstance(rng, Choice):
            out[name] = CategoricalDistribution(list(rng.values))
        elif isinstance(rng, IntRange):
            out[name] = IntDistribution(rng.low, rng.high, log=rng.log)
        else:
            out[name] = FloatDistribution(rng.low, rng.high, log=isinstance(rng, LogUniform))
    return out


# ---- the study folder -------------------------------------------------------------------------------------------
def study_folder(run_dir: str | Path | None, plan: TuningPlan) -> Path:
    from sagefinetune.plans.training import launch_name

    if not isinstance(run_dir, (str, Path, type(None))) or run_dir == "":
        raise ConfigError(f"run_dir must be a folder path; got {run_dir!r}. Fix: run_dir='sft-runs/my-study'.")
    folder = Path(run_dir) if run_dir is not None else Path("sft-runs") / f"{launch_name(plan.trial_plan.job_name)}-study"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"run_dir={str(run_dir)!r} is a file. Fix: a folder path (a new one starts a study; a study's "
                          "folder resumes it).")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _record(job: Job, plan: TuningPlan) -> dict[str, Any]:
    return {"job": repr(job), "space": {k: repr(v) for k, v in plan.space.items()}, "objective": plan.objective,
            "direction": plan.direction, "strategy": plan.strategy, "pruner": plan.pruner, "seed": plan.seed,
            "baseline": plan.baseline}


def check_same_study(folder: Path, job: Job, plan: TuningPlan) -> None:
    """A study folder resumes only its own study; trials, parallel may change (more trials extend it)."""
    path, record = folder / "study.json", _record(job, plan)
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in record if before.get(k) != record[k])
        if changed:
            raise ConfigError(f"study folder {folder} holds another study (changed: {', '.join(changed)}); resuming "
                              "would mix their trials. Fix: a new run_dir, or delete that folder to start over.")
    else:
        path.write_text(json.dumps(record, indent=2))


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """One process per study folder: a second would take the first one's running trials for interrupted ones."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; run one process per folder
        yield
        return
    with open(folder / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another process is running the study in {folder}. Fix: wait for it, or use another "
                              "run_dir.") from None
        yield


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _pruner(plan: TuningPlan, pruner: Any) -> Any:
    import optuna

    if pruner is not None and not isinstance(pruner, str):
        return pruner  # an optuna pruner, as given
    if plan.strategy == "hyperband" or pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=plan.max_epochs, reduction_factor=3)
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _sampler(plan: TuningPlan, done: int) -> Any:
    import optuna

    seed = plan.seed + done  # a resumed study does not draw the values of its first trials again
    if plan.strategy in ("bayesian", "hyperband"):
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, plan.trials // 3)))
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(folder: Path, plan: TuningPlan, pruner: Any) -> optuna.Study:
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}",
                                         engine_kwargs={"connect_args": {"timeout": 60}})
    direction = optuna.study.StudyDirection.MAXIMIZE if plan.direction == "maximize" else optuna.study.StudyDirection.MINIMIZE
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction=direction,
                                pruner=_pruner(plan, pruner), load_if_exists=True)
    study.sampler = _sampler(plan, len(study.trials))
    return study


def requeue(study: optuna.Study, number: int, params: dict[str, Any], run_dir: str | None) -> None:
    """An interrupted trial ends as failed and comes back first, in its own folder (so it resumes its checkpoint)."""
    from optuna.trial import TrialState

    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    attrs = {"resumed_from": number, **({"resumes": run_dir} if run_dir else {})}
    study.enqueue_trial(params, user_attrs=attrs)


def interrupted_numbers(study: optuna.Study) -> set[int]:
    return {t.user_attrs["resumed_from"] for t in study.trials if "resumed_from" in t.user_attrs}


def finished(study: optuna.Study) -> int:
    """Trials that count against the budget: complete, pruned, or failed for a reason of their own."""
    from optuna.trial import TrialState

    gone = interrupted_numbers(study)
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.trials if t.state in ended and t.number not in gone)


def prepare_study(study: optuna.Study, job: Job, plan: TuningPlan) -> None:
    """Requeue the trials a killed process left running; on a new study, queue the grid or the baseline."""
    from optuna.trial import TrialState

    from sagefinetune.plans.tuning import baseline_values, grid_points

    for t in study.trials:
        if t.state == TrialState.RUNNING:  # the lock says no other process runs it: it was interrupted
            requeue(study, t.number, dict(t.params), t.user_attrs.get("run_dir"))
    if study.trials:
        return
    if plan.strategy == "grid":
        for point in grid_points(plan.space)[: plan.trials]:
            study.enqueue_trial(point)
    elif plan.baseline:
        study.enqueue_trial(baseline_values(job, plan.space), user_attrs={"baseline": True})


# ---- running trials -----------------------------------------------------------------------------------------------
class Reporter:
    """The local backend's line callback for one trial: reports each epoch's objective, and stops the process when
    the pruner says so or the study is being stopped."""

    def __init__(self, trial: optuna.Trial, plan: TuningPlan, folder: Path, stop: threading.Event) -> None:
        self.trial, self.plan, self.folder, self.stop = trial, plan, folder, stop
        self.pruned: str | None = None
        self.last: float | None = None
        self.ended = False
        self.reported: set[int] = set()

    def __call__(self, seconds: float, line: str) -> str | None:
        if self.stop.is_set():
            return "interrupted: the study is stopping"
        m = contract.METRIC_LINE.search(line)
        if not m or self.ended or not m["epoch"]:
            return None
        if m["name"] == "train_runtime":
            self.ended = True  # what follows is the final evaluation, not a per-epoch one
        if m["name"] != self.plan.objective:
            return None
        step, self.last = max(1, round(float(m["epoch"]))), float(m["value"])
        if step in self.reported:
            return None
        self.reported.add(step)
        self.trial.report(self.last, step)
        if not self.trial.should_prune():
            return None
        self.pruned = f"pruned at epoch {step}: {self.plan.objective}={self.last:.4g} ({self._why(step)})"
        (self.folder / "pruned.json").write_text(json.dumps({
            "trial": self.trial.number, "epoch": step, "objective": self.plan.objective, "value": self.last,
            "pruner": self.plan.pruner or self.plan.strategy, "reason": self.pruned, "params": self.trial.params}, indent=2))
        return self.pruned

    def _why(self, step: int) -> str:
        from optuna.trial import TrialState

        others = [t.intermediate_values[step] for t in self.trial.study.get_trials(deepcopy=False)
                  if t.number != self.trial.number and step in t.intermediate_values
                  and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if not others:
            return f"{self.plan.pruner or self.plan.strategy} pruner"
        others.sort()
        median = others[len(others) // 2] if len(others) % 2 else (others[len(others) // 2 - 1] + others[len(others) // 2]) / 2
        return f"{self.plan.pruner or self.plan.strategy} pruner; the median of {len(others)} other trial(s) at that epoch was {median:.4g}"


class Runner:
    """Asks Optuna for trials, runs at most ``parallel`` at once, tells it each outcome."""

    def __init__(self, job: Job, plan: TuningPlan, study: optuna.Study, folder: Path, progress: bool) -> None:
        self.job, self.plan, self.study, self.folder, self.progress = job, plan, study, folder, progress
        self.stop = threading.Event()
        self.error: str | None = None
        self.bar: Any = None

    def run(self) -> None:
        todo = self.plan.trials - finished(self.study)
        if todo <= 0:
            return
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.plan.trials, initial=self.plan.trials - todo, desc=f"study {self.folder.name}",
                            unit="trial", dynamic_ncols=True)
        space = distributions(self.plan.space)
        running: dict[Future[Outcome], Any] = {}
        with ThreadPoolExecutor(max_workers=self.plan.parallel, thread_name_prefix="sft-trial") as pool:
            try:
                while todo > 0 or running:
                    while todo > 0 and len(running) < self.plan.parallel and self.error is None:
                        trial = self.study.ask(space)
                        running[pool.submit(self.run_trial, trial)] = trial
                        todo -= 1
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        self.tell(running.pop(future), future.result())
            except KeyboardInterrupt:
                self.stop.set()  # each trial's process stops at its next line; its checkpoints stay for the resume
                for future, trial in running.items():
                    self.tell(trial, future.result())
                raise
            finally:
                if self.bar is not None:
                    self.bar.close()
        if self.error is not None and not any(t.state.name == "COMPLETE" for t in self.study.trials):
            raise TrainingError(f"the study in {self.folder} stopped: its first trials failed and none finished "
                                f"({self.error}). Fix: read the trials' train.log; run again to resume.",
                                job_name=self.folder.name, reason=self.error)

    def run_trial(self, trial: optuna.Trial) -> Outcome:
        from sagefinetune.backends.local import LocalBackend

        folder = Path(trial.user_attrs.get("resumes") or self.folder / f"trial-{trial.number:03d}")
        trial.set_user_attr("run_dir", str(folder))
        reporter = Reporter(trial, self.plan, folder, self.stop)
        try:
            trial_job = self.job.hyperparameters(**trial.params)
            trial_plan = trial_job.plan(instance="local", nodes=self.plan.trial_plan.processes_per_node)
            folder.mkdir(parents=True, exist_ok=True)
            backend = LocalBackend(on_line=reporter, threads=self.plan.threads_per_trial)
            run = backend.fit(trial_job, trial_plan, run_dir=folder, progress=False)
        except TrainingError as exc:
            if reporter.pruned:
                return Outcome("pruned", reporter.last, reporter.pruned)
            if self.stop.is_set():
                return Outcome("interrupted")
            return Outcome("failed", note=str(exc).splitlines()[0])
        except SagefinetuneError as exc:
            return Outcome("failed", note=str(exc).splitlines()[0])
        except Exception as exc:  # one trial's surprise must not leave the study's other trials running unrecorded
            return Outcome("failed", note=f"{type(exc).__name__}: {exc}")
        value = run.metrics.get(self.plan.objective)
        if value is None:
            return Outcome("failed", note=f"the run reported no {self.plan.objective}; it reported {sorted(run.metrics)}")
        return Outcome("complete", value, metrics={k: v for k, v in run.metrics.items() if k.startswith("eval_")})

    def tell(self, trial: optuna.Trial, outcome: Outcome) -> None:
        from optuna.trial import TrialState

        if outcome.state == "interrupted":
            requeue(self.study, trial.number, dict(trial.params), trial.user_attrs.get("run_dir"))
            return
        if outcome.note:
            trial.set_user_attr("note", outcome.note)
        if outcome.metrics:
            trial.set_user_attr("metrics", outcome.metrics)
        if outcome.state == "complete":
            self.study.tell(trial, outcome.value)
        else:
            self.study.tell(trial, state=TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL)
        if outcome.state in ("complete", "pruned"):
            from sagefinetune.backends.local import drop_checkpoints

            drop_checkpoints(trial.user_attrs.get("run_dir"))  # the trial's model folder stays
        if outcome.state == "failed" and self.error is None:
            self.error = f"trial {trial.number}: {outcome.note}"
        self._show(trial.number, outcome)

    def _show(self, number: int, outcome: Outcome) -> None:
        if self.bar is None:
            return
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self.study.trials[number].params.items())
        shown = f"{self.plan.objective}={outcome.value:.4f}" if outcome.value is not None else ""
        self.bar.write(f"[sagefinetune] trial {number} {outcome.state} {shown} {params}"
                       + (f" - {outcome.note}" if outcome.note and outcome.state != "pruned" else ""))
        self.bar.update(1)
        if any(t.state.name == "COMPLETE" for t in self.study.trials):
            self.bar.set_postfix({f"best {self.plan.objective}": f"{self.study.best_value:.4f}"})


# ---- the result -------------------------------------------------------------------------------------------------
def run_study(job: Job, plan: TuningPlan, *, run_dir: str | Path | None, progress: bool, pruner: Any) -> TuningResult:
    """Run (or resume) a local study and return what it found."""
    require("optuna", "tune on this machine")
    folder = study_folder(run_dir, plan)
    with _lock(folder), _quiet_optuna():
        check_same_study(folder, job, plan)
        check_before_trials(job, plan)
        study = open_study(folder, plan, pruner)
        prepare_study(study, job, plan)
        Runner(job, plan, study, folder, progress).run()
        return result(job, plan, study, folder)


def check_before_trials(job: Job, plan: TuningPlan) -> None:
    """Once, here, before any trial: the model and its overrides, the rows and labels, and the objective against the
    problem type the labels make (a multi-label job reports eval_f1_micro, not eval_f1). It also imports in this
    thread what the trials' threads would otherwise import at once (transformers' lazy modules are not thread-safe)."""
    from sagefinetune.facts.models import preflight
    from sagefinetune.plans.tuning import check_objective

    preflight(job.model_id, job.model_config, required=True, reinitialize=job.reinitialize)
    check_objective(plan.objective, plan.direction, job.prepare().label_map.problem_type)


def result(job: Job, plan: TuningPlan, study: optuna.Study, folder: Path) -> TuningResult:
    from sagefinetune.run import TrainingRun

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = study.best_trial if complete else None
    status = "Completed" if finished(study) >= plan.trials else "Incomplete"
    best_dir = Path(best.user_attrs["run_dir"]) if best is not None else None
    frame = trials_table(study, plan, interrupted_numbers(study))
    return TuningResult(
        name=folder.name, plan=plan, job=job, status=status, best_value=best.value if best else None,
        best_hyperparameters={k: best.params[k] for k in plan.space} if best else {}, folder=folder,
        _table=lambda: frame, _best_run=(lambda: TrainingRun.from_run_dir(best_dir)) if best_dir else None,
    )
