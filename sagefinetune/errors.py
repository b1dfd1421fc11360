"""The exceptions sagefinetune raises.

Every error derives from :class:`SagefinetuneError` and also from the built-in it resembles, so
``except ValueError`` keeps working for code that does not know this library::

    SagefinetuneError
    ├── ConfigError (ValueError)             a builder argument or a cross-field rule is wrong
    │   ├── ImageError                       no Hugging Face container for that version / instance
    │   └── CredentialsError                 no AWS credentials or no execution role
    ├── DataError (ValueError)               the rows do not fit what the job needs
    │   ├── ColumnError (KeyError)           a named column does not exist
    │   ├── LabelError                       label values the label map does not cover
    │   └── DatasetUnavailableError          the source (e.g. a withdrawn Hub dataset) cannot be loaded
    ├── MissingDependencyError (ImportError) an optional package is not installed; names the extra
    ├── TrainingError (RuntimeError)         a training job failed or was stopped; carries the reason and log path
    ├── PipelineError (RuntimeError)         a pipeline's condition was not met, or a step or execution failed
    ├── ExportError (RuntimeError)           an exported model fails its accuracy check; carries both scores
    ├── EndpointError (RuntimeError)         an endpoint refused a request or is not answering; carries the status
    ├── AWSError (RuntimeError)              an AWS call failed; the botocore error is ``__cause__``
    │   └── ServingError (EndpointError)     a SageMaker endpoint answered with an error, or an endpoint or batch
    │                                        transform job failed; carries its name and the reason
    ├── HubError (RuntimeError)              a Hugging Face Hub call failed; the huggingface_hub error is ``__cause__``
    └── TrackingError (RuntimeError)         the tracking server (MLflow) could not be reached or refused a call

Messages say what was wrong, echo the value found, and say the fix. They never hold a secret: the base class passes
every message through :func:`~sagefinetune.entrypoint.redaction.redact` (Hub tokens, AWS keys, and values under names
such as ``HF_TOKEN`` or ``api_key`` become ``***``), so every subclass is covered.
"""

from __future__ import annotations

import sys
from typing import Any

from sagefinetune.entrypoint.redaction import redact

__all__ = [
    "SagefinetuneError",
    "redact_chain",
    "ConfigError",
    "ImageError",
    "CredentialsError",
    "DataError",
    "ColumnError",
    "LabelError",
    "DatasetUnavailableError",
    "MissingDependencyError",
    "TrainingError",
    "PipelineError",
    "ExportError",
    "EndpointError",
    "AWSError",
    "HubError",
    "ServingError",
    "TrackingError",
]


class SagefinetuneError(Exception):
    """Base class of every error raised by sagefinetune. Its message is redacted: it never shows a secret, and
    neither do the exceptions a traceback prints under it (its cause and context)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))
        redact_chain(sys.exc_info()[1])


def redact_chain(exc: BaseException | None) -> None:
    """Redact, in place, the string arguments of ``exc`` and of every exception chained to it (``__cause__`` and
    ``__context__``). An error raised while handling ``exc`` gets it as its cause or context, and a traceback prints
    their messages (a botocore or huggingface_hub error's message can carry a key or a token)."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        except (AttributeError, TypeError):  # an exception that will not take new args keeps them
            pass
        pending += [current.__cause__, current.__context__]


class ConfigError(SagefinetuneError, ValueError):
    """A builder argument, or a rule between several of them, is wrong."""


class ImageError(ConfigError):
    """No Hugging Face container image exists for the requested versions or instance."""


class CredentialsError(ConfigError):
    """AWS credentials, the SageMaker execution role or a Hugging Face Hub token are missing."""


class DataError(SagefinetuneError, ValueError):
    """The data does not fit what the job needs (empty splits, bad values)."""


class ColumnError(DataError, KeyError):
    """A column named in ``.columns(...)`` does not exist in the data."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LabelError(DataError):
    """Label values that the label map does not cover, or a label map that does not fit the data."""


class DatasetUnavailableError(DataError):
    """The dataset cannot be loaded from where it was said to be (withdrawn, offline, script-based)."""


class MissingDependencyError(SagefinetuneError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class TrainingError(SagefinetuneError, RuntimeError):
    """A training run failed or was stopped.

    Attributes:
        job_name: the SageMaker job name or the local run's name.
        reason: the failure reason SageMaker or the process reported.
        log_path: where the full log is, when there is one on this machine.
    """

    def __init__(
        self,
        message: str,
        *,
        job_name: str | None = None,
        reason: str | None = None,
        log_path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.job_name = job_name
        self.reason = reason
        self.log_path = log_path


class PipelineError(SagefinetuneError, RuntimeError):
    """A pipeline run stopped: its condition was not met, or a step (or a SageMaker execution) failed.

    Attributes:
        step: the step that stopped it (``condition``, ``train``, ``evaluate``, or a SageMaker step name).
        run: the local :class:`~sagefinetune.pipeline.local.PipelineRun`, or the SageMaker execution.
    """

    def __init__(self, message: str, *, step: str | None = None, run: object = None) -> None:
        super().__init__(message)
        self.step = step
        self.run = run


class ExportError(SagefinetuneError, RuntimeError):
    """An exported model scores worse on the test rows than the model it was exported from, beyond the limit.

    Attributes:
        metric: what was compared (``accuracy``; ``f1_micro`` for multi-label models).
        reference: the PyTorch model's score.
        exported: the exported model's score.
        limit: the largest drop allowed (``max_accuracy_drop``).
        rows: how many test rows were scored.
    """

    def __init__(self, message: str, *, metric: str, reference: float, exported: float, limit: float,
                 rows: int) -> None:
        super().__init__(message)
        self.metric = metric
        self.reference = reference
        self.exported = exported
        self.limit = limit
        self.rows = rows


class EndpointError(SagefinetuneError, RuntimeError):
    """An endpoint answered a request with an error, or is not answering.

    Attributes:
        endpoint: the endpoint's name.
        status: the HTTP status it answered (400 bad input, 413 body too large, 415 content type, 5xx server);
            None when it did not answer.
    """

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class AWSError(SagefinetuneError, RuntimeError):
    """An AWS call failed. The botocore exception is kept as ``__cause__``.

    Attributes:
        operation: the API operation, e.g. ``CreateTrainingJob``.
        code: the AWS error code, e.g. ``ValidationException``.
        request_id: the AWS request id, for support cases.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code
        self.request_id = request_id


class HubError(SagefinetuneError, RuntimeError):
    """A Hugging Face Hub call failed. The huggingface_hub exception is kept as ``__cause__``.

    Attributes:
        status_code: the HTTP status, e.g. ``401``; ``None`` when the Hub could not be reached.
        repo_id: the repository, e.g. ``me/imdb-minilm``.
        endpoint: the Hub's address (``HF_ENDPOINT``, by default ``https://huggingface.co``).
        server_message: what the Hub said, when it said something.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        repo_id: str | None = None,
        endpoint: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.repo_id = repo_id
        self.endpoint = endpoint
        self.server_message = server_message
class ServingError(AWSError, EndpointError):
    """A SageMaker endpoint answered with an error, or a SageMaker endpoint or batch transform job failed.

    Also an :class:`EndpointError`, so ``except EndpointError`` catches local and SageMaker endpoints alike.

    Attributes:
        name: the endpoint's or the transform job's name (also ``endpoint``).
        reason: SageMaker's failure reason, or the container's own message.
        status: the HTTP status the model container answered with, when it answered.
    """

    def __init__(self, message: str, *, name: str | None = None, reason: str | None = None, status: int | None = None,
                 operation: str | None = None, code: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message, operation=operation, code=code, request_id=request_id)
        self.name = self.endpoint = name
        self.reason = reason
        self.status = status


def did_you_mean(value: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class TrackingError(SagefinetuneError, RuntimeError):
    """An MLflow call failed (the server could not be reached, refused the call, or the store cannot be opened).

    Attributes:
        uri: the tracking URI.
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri
