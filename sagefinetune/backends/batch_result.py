"""BatchResult: what a batch prediction wrote, one JSON answer per input line, in input order."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BatchResult"]


@dataclass
class BatchResult:
    """The outcome of ``run.batch_predict(...)``: JSON Lines answers, in S3 (SageMaker) and/or in a local file.

    Attributes:
        output_uri: where SageMaker wrote the answers (``s3://.../``; one ``<input file>.out`` per input file).
        path: the local file (or folder, for several input files) of answers, once downloaded.
        job_name: the batch transform job's name.
        input_uri: the JSON Lines input in S3.
        instance: the instance type, and ``rows`` the number of input lines when sagefinetune wrote them.
        status: ``Completed``, or ``InProgress`` after ``wait=False``.
        seconds, cost_usd: the job's run time and its cost at the dated hosting price (an estimate).

    Example:
        >>> out = run.batch_predict(ds, instance="ml.m5.xlarge", download=True)  # doctest: +SKIP
        >>> out.predictions()[:1]  # doctest: +SKIP
        [{'label': 'sports', 'score': 0.97}]
    """

    output_uri: str | None
    path: Path | None = None
    job_name: str | None = None
    input_uri: str | None = None
    instance: str | None = None
    rows: int | None = None
    status: str = "Completed"
    seconds: float | None = None
    cost_usd: float | None = None
    _download: Callable[[Path | None], Path] | None = field(default=None, repr=False)
    _wait: Callable[[], BatchResult] | None = field(default=None, repr=False)

    def wait(self) -> BatchResult:
        """Follow a job started with ``wait=False`` to its end; returns the finished result."""
        return self._wait() if self._wait is not None and self.status != "Completed" else self

    def download(self, path: str | Path | None = None) -> Path:
        """Download the answers (all ``.out`` files under ``output_uri``); returns the file, or the folder if several."""
        if self._download is None:
            raise ConfigError(f"nothing to download: the answers are already in {self.path}.")
        self.path = self._download(Path(path) if path is not None else None)
        return self.path

    def predictions(self) -> list[Any]:
        """One answer per input line: ``{"label": ..., "score": ...}`` (or the container's JSON for other requests)."""
        if self.path is None:
            raise ConfigError("the answers are not downloaded yet. Fix: result.download(), or batch_predict(..., "
                              "download=True).")
        files = sorted(self.path.glob("*.out")) if self.path.is_dir() else [self.path]
        answers = []
        for file in files:
            for line in file.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    answers.append(json.loads(line))
        return answers

    def to_pandas(self) -> pd.DataFrame:
        """The answers as a DataFrame (columns ``label`` and ``score`` for sagefinetune's handler)."""
        import pandas as pd

        return pd.DataFrame(self.predictions())
