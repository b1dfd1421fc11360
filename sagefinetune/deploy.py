"""Where a model goes to answer: the local server, a SageMaker endpoint, or a SageMaker batch transform job.

``TrainingRun.deploy`` / ``batch_predict`` and :meth:`sagefinetune.Endpoint.from_model` route through here:
``instance="local"`` goes to :mod:`sagefinetune.serving`; anything else to the SageMaker backends
(:mod:`sagefinetune.backends.sagemaker.endpoints`, :mod:`sagefinetune.backends.sagemaker.batch`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker.endpoints import ServingBackend
from sagefinetune.backends.sagemaker.model_archive import HANDLER
from sagefinetune.backends.sagemaker.training import SageMakerBackend
from sagefinetune.errors import ConfigError
from sagefinetune.plans import deploy as deploy_plan
from sagefinetune.plans.deploy import ModelRef

if TYPE_CHECKING:
    from sagefinetune.backends.batch_result import BatchResult
    from sagefinetune.endpoint import Endpoint
    from sagefinetune.run import TrainingRun

__all__ = ["deploy_run", "deploy_model", "batch_transform_run"]


def deploy_run(run: TrainingRun, **options: Any) -> Endpoint:
    """Serve a training run's model: a SageMaker real-time or serverless endpoint (``run.deploy`` calls this).

    A SageMaker run serves its artifact (which holds ``code/inference.py``); a local run's model folder is packed and
    uploaded once per content. Options: see :meth:`sagefinetune.Endpoint.from_model`.
    """
    if options.get("instance") == "local" and not options.get("serverless"):
        return deploy_local(run.model_dir, options)
    deploy_plan.check_options(options)
    model, role, bucket = run_model(run)
    return backend_for(options, run).deploy(model, options, run_role=role, artifact_bucket=bucket)


def deploy_model(model: str | Path, **options: Any) -> Endpoint:
    """Serve a model that did not come from a run (see :meth:`sagefinetune.Endpoint.from_model`)."""
    ref = model_ref(model)
    if options.get("instance") == "local" and not options.get("serverless"):
        return deploy_local(local_folder(ref), options)
    if ref.kind == "folder" and (Path(ref.location) / "model.onnx").is_file():
        raise ConfigError(f"{ref.location} is an ONNX export; SageMaker's Hugging Face inference container runs "
                          "PyTorch models only. Fix: serve the export here (instance='local', or Predictor), or deploy "
                          "the PyTorch model folder (run.model_dir) to SageMaker.")
    deploy_plan.check_options(options)
    return backend_for(options).deploy(ref, options)



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

    deploy_plan.check_options(options, deploy_plan.TRANSFORM_OPTIONS, "batch_predict")
    model, role, bucket = run_model(run)
    return transform(backend_for(options, run), model, data, options, run_role=role, artifact_bucket=bucket)


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
    has = (folder / "code" / "inference.py").is_file() or HANDLER.is_file()
    return ModelRef("folder", str(folder), deploy_plan.images.IMAGE_PAIRS[0], has, run.name), None, None




def backend_for(options: Mapping[str, Any], run: TrainingRun | None = None) -> ServingBackend:
    """The session and region given, else the SageMaker run's own, else the default credential chain's."""
    from sagefinetune.core.checks import boolean, positive_number

    session, region = options.get("boto_session"), options.get("region")
    if region is not None:
        deploy_plan.check_region(region)
    progress = boolean("progress", options.get("progress", True), "progress=False")
    poll = positive_number("poll_seconds", options.get("poll_seconds", 15.0), "poll_seconds=15")
    if session is None and region is None and run is not None and isinstance(run._backend, SageMakerBackend):
        session, region = run._backend.boto, run._backend.region
    return ServingBackend(session, region, progress=progress, poll_seconds=poll)


def model_ref(model: Any) -> ModelRef:
    """An ``s3://.../model.tar.gz``, a local model folder, or a Hub id, checked (no network)."""
    from sagefinetune.facts.models import check_name, model_source

    pair = deploy_plan.images.IMAGE_PAIRS[0]
    if isinstance(model, Path):
        model = str(model)
    if isinstance(model, str) and model.startswith("s3://"):
        if not model.endswith(".tar.gz") or len(model.split("/")) < 4:
            raise ConfigError(f"from_model needs a model archive, s3://<bucket>/<key>.tar.gz; got {model!r}. Fix: a "
                              "training job's artifact (TrainingRun.model_artifact), or the local model folder.")
        return ModelRef("artifact", model, pair, None)
    name = check_name(model)
    if model_source(name) == "folder":
        return ModelRef("folder", name, pair, (Path(name) / "code" / "inference.py").is_file() or HANDLER.is_file())
    return ModelRef("hub", name, pair, False)


def local_folder(ref: ModelRef) -> Path:
    from sagefinetune.facts.models import local_path

    found = ref.location if ref.kind == "folder" else local_path(ref.location) if ref.kind == "hub" else None
    if found is None:
        raise ConfigError(f"instance='local' serves a model folder on this machine; {ref.location!r} is not one. Fix: "
                          "download (and unpack) it, then Endpoint.from_model('<folder>', instance='local').")
    return Path(found)


def deploy_local(folder: Path, options: Mapping[str, Any]) -> Endpoint:
    """The local endpoint of sagefinetune.serving (imported only now)."""
    try:
        from sagefinetune.serving import deploy_local as serve
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.serving":
            raise
        raise ConfigError("instance='local' needs sagefinetune.serving, which this install lacks. Fix: upgrade "
                          "sagefinetune, or deploy to SageMaker (instance='ml.m5.xlarge').") from exc
    endpoint: Endpoint = serve(folder, **{k: v for k, v in options.items() if k not in ("instance", "serverless")})
    return endpoint
