"""Experiment tracking from inside the training process: parameters, the loss at each logging step, the metrics of
each evaluation and the final ones, and the reports, logged to an MLflow run. Standard library at import; mlflow only
when tracking is on (``SFT_TRACKING=mlflow``).

The settings arrive as environment variables, locally (the local backend sets them) and on SageMaker (the job's
``Environment``), never as hyperparameters:

- ``SFT_TRACKING``: ``mlflow`` (absent: no tracking);
- ``SFT_TRACKING_URI``: the tracking URI (a ``sqlite:``/``file:`` store here, ``http(s)://`` or a SageMaker MLflow ARN);
- ``SFT_TRACKING_EXPERIMENT``: the experiment's name;
- ``SFT_TRACKING_RUN_ID``: the run to log into (the library opens it before launch); absent (a tuning job's trials),
  this process opens one and keeps its id in the checkpoint folder, so a restarted job goes on logging into it;
- ``SFT_TRACKING_RUN_NAME``: the run's name when it opens one (default: ``TRAINING_JOB_NAME``);
- ``SFT_TRACKING_PARAMS``: JSON of parameters the library knows and the job does not (data fingerprint, instance,
  nodes).

Its own small callback rather than transformers' ``MLflowCallback``: that one logs every TrainingArguments field,
drives mlflow's global run state, and reads other variables on transformers 4.56 than on 5.x; this one logs the same
names on both. Only the main process (rank 0) logs.
"""

from __future__ import annotations

import json
import os
from typing import Any

TRACKER = "SFT_TRACKING"
URI = "SFT_TRACKING_URI"
EXPERIMENT = "SFT_TRACKING_EXPERIMENT"
RUN_ID = "SFT_TRACKING_RUN_ID"
RUN_NAME = "SFT_TRACKING_RUN_NAME"
PARAMS = "SFT_TRACKING_PARAMS"
TRACKERS = ("mlflow",)
RECORD_FILE = "tracking.json"  # the run's uri, experiment and run id: in the output folder and the checkpoint folder
MAX_PARAM = 6000  # MLflow keeps a parameter's value up to this many characters


def settings(environ: Any = None) -> dict[str, str] | None:
    """The tracking settings of this process, or None when tracking is off. Raises SystemExit when they are broken.

    >>> settings({})
    >>> settings({"SFT_TRACKING": "mlflow", "SFT_TRACKING_URI": "sqlite:///m.db", "SFT_TRACKING_EXPERIMENT": "r"})
    {'tracker': 'mlflow', 'uri': 'sqlite:///m.db', 'experiment': 'r', 'run_id': '', 'run_name': '', 'params': '{}'}
    """
    env = os.environ if environ is None else environ
    tracker = env.get(TRACKER, "")
    if not tracker:
        return None
    if tracker not in TRACKERS:
        raise SystemExit(f"{TRACKER}={tracker!r} is not a tracker this entry point knows ({', '.join(TRACKERS)}). "
                         "Fix: track('mlflow', ...) on the Job.")
    missing = [name for name in (URI, EXPERIMENT) if not env.get(name)]
    if missing:
        raise SystemExit(f"tracking is on ({TRACKER}={tracker}) but {', '.join(missing)} is not set. Fix: set it, or "
                         f"unset {TRACKER}.")
    return {"tracker": tracker, "uri": env[URI], "experiment": env[EXPERIMENT], "run_id": env.get(RUN_ID, ""),
            "run_name": env.get(RUN_NAME) or env.get("TRAINING_JOB_NAME", ""), "params": env.get(PARAMS) or "{}"}


def params_of(hp: dict[str, Any], extra: dict[str, Any]) -> dict[str, str]:
    """The run's parameters: every hyperparameter (JSON for lists and dicts), ``model``, and what the library sent.

    >>> params_of({"epochs": 3.0, "labels": ["neg", "pos"], "model_name_or_path": "m"}, {"nodes": 1})
    {'epochs': '3.0', 'labels': '["neg", "pos"]', 'model_name_or_path': 'm', 'model': 'm', 'nodes': '1'}
    """
    out: dict[str, str] = {}
    for key, value in {**hp, "model": hp.get("model_name_or_path"), **extra}.items():
        text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
        out[key] = text[:MAX_PARAM]
    return out


def numbers(logs: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a Trainer log (not booleans).

    >>> numbers({"loss": 0.5, "epoch": 1, "done": True, "note": "x"})
    {'loss': 0.5, 'epoch': 1.0}
    """
    return {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class Tracker:
    """An MLflow run that the entry point logs into, through ``MlflowClient`` (no global mlflow state)."""

    def __init__(self, config: dict[str, str], checkpoint_dir: str, log: Any = print) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise SystemExit("tracking is on (SFT_TRACKING=mlflow) but mlflow is not installed where the job runs. "
                             "Fix: pip install mlflow-skinny (and sagemaker-mlflow for a SageMaker MLflow ARN); on "
                             "SageMaker the library's requirements add both.") from None
        self.config = config
        self.client = MlflowClient(tracking_uri=config["uri"])
        self.run_id = config["run_id"] or self._own_run(checkpoint_dir)
        log(f"tracking: MLflow run {self.run_id} in experiment {config['experiment']!r}")

    def _own_run(self, checkpoint_dir: str) -> str:
        """A run opened here (no run id was sent), or the one an earlier attempt of this job opened."""
        path = os.path.join(checkpoint_dir, RECORD_FILE)
        if os.path.isfile(path):
            with open(path) as fh:
                before = json.load(fh)
            if before.get("uri") == self.config["uri"] and before.get("experiment") == self.config["experiment"]:
                return str(before["run_id"])
        found = self.client.get_experiment_by_name(self.config["experiment"])
        experiment = found.experiment_id if found is not None else self.client.create_experiment(
            self.config["experiment"])
        run = self.client.create_run(experiment, run_name=self.config["run_name"] or None,
                                     tags={"sagefinetune.opened_by": "entry point"})
        self.write_record(checkpoint_dir, run.info.run_id)
        return str(run.info.run_id)

    def record(self, run_id: str | None = None) -> dict[str, str]:
        return {"uri": self.config["uri"], "experiment": self.config["experiment"], "run_id": run_id or self.run_id}

    def write_record(self, folder: str, run_id: str | None = None) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, RECORD_FILE), "w") as fh:
            json.dump(self.record(run_id), fh, indent=2)

    def log_params(self, hp: dict[str, Any]) -> None:
        from mlflow.entities import Param

        extra = json.loads(self.config["params"])
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params_of(hp, extra).items()])

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items() if v == v]  # NaN is not stored
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_files(self, folder: str, names: tuple[str, ...]) -> None:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                self.client.log_artifact(self.run_id, path)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)

    def callback(self) -> Any:
        """A TrainerCallback that logs each Trainer log (the loss at each logging step, each evaluation) at its step."""
        from transformers import TrainerCallback

        tracker = self

        class MlflowLines(TrainerCallback):  # type: ignore[misc]
            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                       **kw: Any) -> None:
                if state.is_world_process_zero and logs:
                    tracker.log_metrics(numbers(logs), state.global_step)

        return MlflowLines()


#: The run this process logs into, once started: :func:`end_failed` marks it when the script fails.
ACTIVE: list[Tracker] = []


def start(hp: dict[str, Any], checkpoint_dir: str, log: Any = print) -> Tracker | None:
    """The run this process logs into (parameters logged), or None when tracking is off or this is not rank 0."""
    config = settings()
    if config is None or not _is_main():
        return None
    tracker = Tracker(config, checkpoint_dir, log)
    tracker.log_params(hp)
    ACTIVE.append(tracker)
    return tracker


def finish(tracker: Tracker | None, metrics: dict[str, float], step: int, output_dir: str) -> None:
    """The final metrics, the reports (classification report, confusion matrix) and the record of the run."""
    if tracker is None:
        return
    tracker.log_metrics(metrics, step)
    tracker.log_files(output_dir, ("classification_report.json", "confusion_matrix.json"))
    tracker.write_record(output_dir)
    tracker.end("FINISHED")
    ACTIVE.clear()


def end_failed(exc: BaseException) -> None:
    """Mark the active run FAILED (KILLED for Ctrl-C); a tracking server that cannot be reached is left as it is."""
    if isinstance(exc, SystemExit) and not exc.code:
        return
    for tracker in ACTIVE:
        try:
            tracker.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        except Exception:  # noqa: BLE001 - the run's own failure is what the job must report
            pass
    ACTIVE.clear()
