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
    "Dataset": "dataset",
    "LabelMap": "labels",
    "Job": "job",
    "TrainingPlan": "plan",
    "TrainingRun": "run",
    "Cost": "run",
    "Predictor": "predict",
    "Endpoint": "endpoint",
    "BatchResult": "batch",
    "LogUniform": "space",
    "Uniform": "space",
    "IntRange": "space",
    "Choice": "space",
    "TuningPlan": "tuning_result",
    "TuningResult": "tuning_result",
    "Finding": "diagnose",
    "Diagnosis": "diagnose",
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
    "ExportedModel": "export",
    "CredentialsError": "errors",
    "ImageError": "errors",
    "AWSError": "errors",
    "HubError": "errors",
    "HubPush": "hub",
    "ServingError": "errors",
    "Estimate": "estimate",
    "LocalSpeed": "localspeed",
    "measure_speed": "localspeed",
    "Grid": "grid",
    "GridResult": "grid_result",
    "PipelineError": "errors",
    "Pipeline": "pipeline",
    "PipelineExecution": "pipeline",
    "PipelineRun": "pipeline",
    "Registry": "registry",
    "ModelVersion": "registry",
}

__all__ = [
    "AWSError", "BatchResult", "Choice", "ColumnError", "ConfigError", "Cost", "CredentialsError", "DataError",
    "Dataset", "DatasetUnavailableError", "Diagnosis", "Endpoint", "EndpointError", "Estimate", "ExportError",
    "ExportedModel", "Finding", "Grid", "GridResult", "HubError", "HubPush", "ImageError", "IntRange", "Job",
    "LabelError", "LabelMap", "LocalSpeed", "LogUniform", "MissingDependencyError", "ModelVersion", "Pipeline",
    "PipelineError", "PipelineExecution", "PipelineRun", "Predictor", "Registry", "SagefinetuneError",
    "ServingError", "TrainingError", "TrainingPlan", "TrainingRun", "TuningPlan", "TuningResult", "Uniform",
    "measure_speed",
]

if TYPE_CHECKING:
    from .batch import BatchResult
    from .dataset import Dataset
    from .diagnose import Diagnosis, Finding
    from .endpoint import Endpoint
    from .errors import (
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
        TrainingError,
    )
    from .estimate import Estimate
    from .export import ExportedModel
    from .grid import Grid
    from .grid_result import GridResult
    from .hub import HubPush
    from .job import Job
    from .labels import LabelMap
    from .localspeed import LocalSpeed, measure_speed
    from .pipeline import Pipeline, PipelineExecution, PipelineRun
    from .plan import TrainingPlan
    from .predict import Predictor
    from .registry import ModelVersion, Registry
    from .run import Cost, TrainingRun
    from .space import Choice, IntRange, LogUniform, Uniform
    from .tuning_result import TuningPlan, TuningResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sagefinetune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
