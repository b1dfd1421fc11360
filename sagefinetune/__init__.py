"""sagefinetune: fine-tune and serve Hugging Face text classifiers, locally or on SageMaker.

    >>> import sagefinetune as sft
    >>> job = sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes")).hyperparameters(epochs=1)

Names are loaded lazily: ``import sagefinetune`` imports no torch, transformers, datasets or sagemaker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Dataset": "data.dataset",
    "LabelMap": "data.labels",
    "Job": "job",
    "TrainingPlan": "plans.training",
    "TrainingRun": "run",
    "Cost": "run",
    "Predictor": "runtime.predict",
    "Endpoint": "endpoint",
    "BatchResult": "backends.batch_result",
    "LogUniform": "plans.space",
    "Uniform": "plans.space",
    "IntRange": "plans.space",
    "Choice": "plans.space",
    "TuningPlan": "plans.tuning",
    "TuningResult": "tuning.result",
    "Finding": "runtime.diagnose",
    "Diagnosis": "runtime.diagnose",
    "SagefinetuneError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "ColumnError": "errors",
    "LabelError": "errors",
    "DatasetUnavailableError": "errors",
    "MissingDependencyError": "errors",
    "TrainingError": "errors",
    "EndpointError": "errors",
    "ExportError": "errors",
    "ExportedModel": "run",
    "CredentialsError": "errors",
    "ImageError": "errors",
    "AWSError": "errors",
    "HubError": "errors",
    "TrackingError": "errors",
    "Tracking": "plans.tracking",
    "HubPush": "hub.push",
    "ServingError": "errors",
    "Estimate": "cost.estimate",
    "LocalSpeed": "cost.local_speed",
    "measure_speed": "speed",
    "Grid": "grid.grid",
    "GridResult": "grid.result",
    "PipelineError": "errors",
    "Pipeline": "pipeline.spec",
    "PipelineExecution": "pipeline.execution",
    "PipelineRun": "pipeline.local",
    "Registry": "registry",
    "ModelVersion": "backends.records",
}

__all__ = [
    "AWSError", "BatchResult", "Choice", "ColumnError", "ConfigError", "Cost", "CredentialsError", "DataError",
    "Dataset", "DatasetUnavailableError", "Diagnosis", "Endpoint", "EndpointError", "Estimate", "ExportError",
    "ExportedModel", "Finding", "Grid", "GridResult", "HubError", "HubPush", "ImageError", "IntRange", "Job",
    "LabelError", "LabelMap", "LocalSpeed", "LogUniform", "MissingDependencyError", "ModelVersion", "Pipeline",
    "PipelineError", "PipelineExecution", "PipelineRun", "Predictor", "Registry", "SagefinetuneError",
    "ServingError", "Tracking", "TrackingError", "TrainingError", "TrainingPlan", "TrainingRun", "TuningPlan", "TuningResult", "Uniform",
    "measure_speed",
]

if TYPE_CHECKING:
    from sagefinetune.backends.batch_result import BatchResult
    from sagefinetune.backends.records import ModelVersion
    from sagefinetune.cost.estimate import Estimate
    from sagefinetune.cost.local_speed import LocalSpeed
    from sagefinetune.data.dataset import Dataset
    from sagefinetune.data.labels import LabelMap
    from sagefinetune.endpoint import Endpoint
    from sagefinetune.errors import (
        AWSError,
        ColumnError,
        ConfigError,
        CredentialsError,
        DataError,
        DatasetUnavailableError,
        EndpointError,
        ExportError,
        HubError,
        ImageError,
        LabelError,
        MissingDependencyError,
        PipelineError,
        SagefinetuneError,
        ServingError,
        TrackingError,
        TrainingError,
    )
    from sagefinetune.grid.grid import Grid
    from sagefinetune.grid.result import GridResult
    from sagefinetune.hub.push import HubPush
    from sagefinetune.job import Job
    from sagefinetune.pipeline import Pipeline, PipelineExecution, PipelineRun
    from sagefinetune.plans.space import Choice, IntRange, LogUniform, Uniform
    from sagefinetune.plans.tracking import Tracking
    from sagefinetune.plans.training import TrainingPlan
    from sagefinetune.plans.tuning import TuningPlan
    from sagefinetune.registry import Registry
    from sagefinetune.run import Cost, ExportedModel, TrainingRun
    from sagefinetune.runtime.diagnose import Diagnosis, Finding
    from sagefinetune.runtime.predict import Predictor
    from sagefinetune.speed import measure_speed
    from sagefinetune.tuning.result import TuningResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sagefinetune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
