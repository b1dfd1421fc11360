"""The client's side of experiment tracking (MLflow): open the run before launch, log what only the client knows
after it (the cost, the confusion-matrix plot, the model card). The training process logs the rest into the same run
(:mod:`sagefinetune.entrypoint.tracking`). mlflow is imported here only, when a tracked job runs.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.core.deps import require
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import TrackingError
from sagefinetune.plans.tracking import Tracking, TrackingSpec

if TYPE_CHECKING:
    from sagefinetune.backends.records import RunRecord
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["open_run", "open_sagemaker_run", "name_run", "finish_run", "tracking_errors", "RECORD_FILE"]

RECORD_FILE = "tracking.json"  # a local run folder's run id, so a resumed run logs into the same MLflow run


@contextmanager
def tracking_errors(action: str, uri: str) -> Iterator[None]:
    """MLflow's errors (and a server that cannot be reached) as :class:`TrackingError`, the original as cause."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:  # noqa: BLE001 - MlflowException, requests' and boto's errors alike
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"MLflow {action} at {uri} failed: {first}. Fix: check the tracking URI and that the server is up and this "
            "identity may use it (a SageMaker MLflow ARN needs `pip install sagemaker-mlflow` and the "
            "sagemaker-mlflow:* permissions).", uri=uri) from exc


def _client(uri: str) -> Any:
    require("mlflow", "track runs with MLflow")
    if uri.startswith("arn:"):
        require("sagemaker_mlflow", "track runs on a SageMaker MLflow tracking server")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact_location(uri: str, experiment: str) -> str | None:
    """A SQLite store keeps its artifacts beside it (MLflow's default is ./mlruns of whichever process made the
    experiment: the training process runs in its own folder)."""
    if not uri.startswith("sqlite:///"):
        return None
    folder = Path(uri[len("sqlite:///"):]).parent / "artifacts"
    return (folder / experiment.replace("/", "_")).as_uri()


def _experiment_id(client: Any, spec: TrackingSpec) -> str:
    found = client.get_experiment_by_name(spec.experiment)
    if found is not None:
        return str(found.experiment_id)
    if spec.uri.startswith("sqlite:///"):
        Path(spec.uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(spec.experiment, artifact_location=_artifact_location(spec.uri,
                                                                                              spec.experiment)))


def open_run(spec: TrackingSpec, run_name: str, *, reuse: Path | None = None) -> Tracking:
    """The MLflow run a launch logs into: the one recorded in ``reuse`` (a resumed local run) or a new one."""
    if reuse is not None and reuse.is_file():
        before = json.loads(reuse.read_text())
        if before.get("uri") == spec.uri and before.get("experiment") == spec.experiment:
            return Tracking(spec.uri, spec.experiment, str(before["run_id"]))
    with tracking_errors("create run", spec.uri):
        client = _client(spec.uri)
        run = client.create_run(_experiment_id(client, spec), run_name=run_name,
                                tags={"sagefinetune.run": run_name})
    tracking = Tracking(spec.uri, spec.experiment, str(run.info.run_id))
    if reuse is not None:
        reuse.write_text(json.dumps(tracking.to_dict(), indent=2))
    return tracking


def open_sagemaker_run(plan: TrainingPlan, data_hash: str, model: str) -> tuple[TrainingPlan, Tracking | None]:
    """A SageMaker launch's MLflow run, opened before CreateTrainingJob; the plan with its id and parameters in the
    job's environment (DescribeTrainingJob shows them, so ``TrainingRun.attach`` finds the run again)."""
    if plan.tracking is None or plan.sagemaker is None:
        return plan, None
    tracking = open_run(plan.tracking, plan.job_name)
    params = {"data_fingerprint": data_hash, "instance": plan.instance, "nodes": plan.nodes,
              "processes_per_node": plan.processes_per_node, "backend": plan.backend, "model": model}
    environment = {**plan.tracking.environment(tracking.run_id, None, params), **plan.sagemaker.environment}
    return replace(plan, sagemaker=replace(plan.sagemaker, environment=MappingProxyType(environment))), tracking


def name_run(tracking: Tracking, name: str) -> None:
    """Name the run after the job SageMaker launched (its name is known only then)."""
    with tracking_errors("set the run name", tracking.uri):
        client = _client(tracking.uri)
        client.set_tag(tracking.run_id, "mlflow.runName", name)
        client.set_tag(tracking.run_id, "sagefinetune.run", name)


def finish_run(run: RunRecord) -> None:
    """Log into the run's MLflow run what the client knows at the end: the cost, the confusion-matrix plot and the
    model card (a SageMaker run's model is downloaded once for them, as ``run.model_dir`` would)."""
    tracking = run.tracking
    if tracking is None:
        return
    import time

    from mlflow.entities import Metric, Param

    from sagefinetune.runtime.modelcard import card_from_facts, confusion_png, run_facts

    cost, now = run.cost, int(time.time() * 1000)
    with tracking_errors("log the cost and reports", tracking.uri):
        client = _client(tracking.uri)
        client.log_batch(tracking.run_id, metrics=[Metric("cost_usd", float(cost.usd), now, 0),
                                                   Metric("billable_seconds", float(cost.billable_seconds), now, 0)],
                         params=[Param("cost_source", cost.source[:500])])
        facts = run_facts(run, Path(run.model_dir))  # type: ignore[attr-defined, arg-type]
        picture = confusion_png(facts.confusion)
        card = card_from_facts(facts, run.name, picture=picture is not None)
        with tempfile.TemporaryDirectory(prefix="sft-tracking-") as folder:
            (Path(folder) / "README.md").write_text(redact(str(card)), encoding="utf-8")
            client.log_artifact(tracking.run_id, str(Path(folder) / "README.md"), "model_card")
            if picture is not None:
                (Path(folder) / "confusion_matrix.png").write_bytes(picture)
                client.log_artifact(tracking.run_id, str(Path(folder) / "confusion_matrix.png"))
