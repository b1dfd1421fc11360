"""Where a training run's model goes to answer: the local server, a SageMaker endpoint, or a batch transform job.

``TrainingRun.deploy`` / ``batch_predict`` route through here (a model not from a run goes through
:meth:`sagefinetune.Endpoint.from_model`): ``instance="local"`` goes to :func:`sagefinetune.endpoint.deploy_local`;
anything else to the SageMaker backends (:mod:`sagefinetune.backends.sagemaker.endpoints`,
:mod:`sagefinetune.backends.sagemaker.batch`), whose records come back wrapped as Endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker.endpoints import ServingBackend
from sagefinetune.backends.sagemaker.training import SageMakerBackend
from sagefinetune.endpoint import SageMakerEndpoint, deploy_local, serving_backend
from sagefinetune.errors import ConfigError
from sagefinetune.plans import deploy as deploy_plan
from sagefinetune.plans.deploy import ModelRef
from sagefinetune.plans.transform import TRANSFORM_OPTIONS

if TYPE_CHECKING:
    from sagefinetune.backends.batch_result import BatchResult
    from sagefinetune.endpoint import Endpoint
    from sagefinetune.run import TrainingRun

__all__ = ["deploy_run", "batch_transform_run"]


def deploy_run(run: TrainingRun, **options: Any) -> Endpoint:
    """Serve a training run's model: a SageMaker real-time or serverless endpoint (``run.deploy`` calls this).

    A SageMaker run serves its artifact (which holds ``code/inference.py``); a local run's model folder is packed and
    uploaded once per content. Options: see :meth:`sagefinetune.Endpoint.from_model`.
    """
    if options.get("instance") == "local" and not options.get("serverless"):
        return deploy_local(run.model_dir, **options)
    deploy_plan.check_options(options)
    model, role, bucket = run_model(run)
    if model.kind == "folder":
        check_folder(run.model_dir, options)
    backend = backend_for(options, run)
    return SageMakerEndpoint(backend.deploy(model, options, run_role=role, artifact_bucket=bucket), backend)


def batch_transform_run(run: TrainingRun, data: Any, **options: Any) -> BatchResult:
    """Predict a whole dataset with a SageMaker batch transform job (``run.batch_predict`` calls this).

    Args:
        run: the training run whose model predicts (its artifact, or its model folder packed and uploaded).
        data: a :class:`~sagefinetune.Dataset` (its ``split``, default ``"test"``, written as JSON Lines and uploaded
            once per content), a list of texts, a ``Dataset.from_s3(...)``, or an ``s3://`` URI of JSON Lines files
            with one input per line (``{"inputs": "a text"}``).
        **options: ``instance`` (default ``"ml.m5.xlarge"``), ``instance_count``, ``output_path`` (``s3://``;
            default ``s3://<bucket>/sagefinetune/batch-output/<job>/``), ``download`` (fetch the answers into
            ``path``), ``split``, ``max_concurrent_transforms``, ``wait``, ``timeout``, and the options of
            :meth:`~sagefinetune.Endpoint.from_model` that concern the model (``role``, ``region``, ``bucket``,
            ``tags``, ``image``, ``environment``, ...).

    Returns:
        A :class:`~sagefinetune.BatchResult`.
    """
    from sagefinetune.backends.sagemaker.batch import transform

    deploy_plan.check_options(options, TRANSFORM_OPTIONS, "batch_predict")
    model, role, bucket = run_model(run)
    return transform(backend_for(options, run), model, data, options, run_role=role, artifact_bucket=bucket)


def check_folder(folder: Any, options: Mapping[str, Any]) -> None:
    """The check at deploy on a local run's model folder, before it is packed (so that ``model.tar.gz`` carries the
    record, the int8 export and ``code/requirements.txt``); says what the handler will serve on a CPU instance."""
    from sagefinetune.core.console import say
    from sagefinetune.runtime.serving_check import check_serving, sync_requirements

    if options.get("runtime") == "pytorch" or options.get("precision") not in (None, "auto"):
        sync_requirements(folder, False)  # no pip install of onnxruntime at model load (an isolated network has none)
        say(f"the handler serves PyTorch as asked (runtime={options.get('runtime')!r}, "
            f"precision={options.get('precision')!r})")
        return
    record = check_serving(folder)
    if record is None:
        say("no test split to check the int8 export on: the handler serves PyTorch, precision auto")
        return
    served = "the int8 ONNX export" if record["runtime"] == "onnx" else f"PyTorch {record['precision']}"
    say(f"on a CPU instance the handler serves {served}: {record['why']} ({record['rows']} test rows; "
        "serving.json). A GPU instance serves PyTorch. Override: deploy(..., runtime='pytorch').")


def run_model(run: TrainingRun) -> tuple[ModelRef, str | None, str | None]:
    """What serves a run: its artifact (SageMaker) or its model folder (local); and the run's role and bucket."""
    if run.backend == "sagemaker":
        if not run.model_artifact:
            raise ConfigError(f"run {run.name} has no model artifact yet (status {run.status}). Fix: run.wait() first.")
        spec = run.plan.sagemaker if run.plan is not None else None
        pair = spec.image if spec is not None else deploy_plan.pair_for_training_image(
            (run.description.get("AlgorithmSpecification") or {}).get("TrainingImage"))
        model = ModelRef("artifact", run.model_artifact, pair, True, run.name)
        return model, run.description.get("RoleArn"), run.model_artifact[len("s3://"):].split("/", 1)[0]
    folder = run.model_dir
    has = (folder / "code" / "inference.py").is_file() or deploy_plan.handler_file().is_file()
    return ModelRef("folder", str(folder), deploy_plan.images.IMAGE_PAIRS[0], has, run.name), None, None


def backend_for(options: Mapping[str, Any], run: TrainingRun) -> ServingBackend:
    """The session and region given, else the SageMaker run's own, else the default credential chain's."""
    own = run.sagemaker if isinstance(run.sagemaker, SageMakerBackend) else None
    return serving_backend(options, own.boto if own else None, own.region if own else None)
