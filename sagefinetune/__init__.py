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
}

__all__ = [
    "AWSError", "BatchResult", "ColumnError", "ConfigError", "Cost", "CredentialsError", "DataError", "Dataset",
    "DatasetUnavailableError", "Endpoint", "EndpointError", "ExportError", "ExportedModel", "HubError", "HubPush",
    "ImageError", "Job", "LabelError", "LabelMap", "MissingDependencyError", "Predictor", "SagefinetuneError",
    "ServingError", "TrainingError", "TrainingPlan", "TrainingRun",
]

if TYPE_CHECKING:
    from .batch import BatchResult
    from .dataset import Dataset
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
        SagefinetuneError,
        ServingError,
        TrainingError,
    )
    from .export import ExportedModel
    from .hub import HubPush
    from .job import Job
    from .labels import LabelMap
    from .plan import TrainingPlan
    from .predict import Predictor
    from .run import Cost, TrainingRun


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sagefinetune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
