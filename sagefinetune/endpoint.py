"""Endpoint: a trained model that answers predictions, on this machine or on SageMaker, with one JSON contract.

Every kind of endpoint answers the same request with the same JSON, because they all run the same handler
(``entrypoint/inference.py``, written into every model folder as ``code/inference.py``):

request (``application/json``)::

    {"inputs": "a text" | ["text", ...] | [["text", "text_pair"], ...], "parameters": {"top_k": 2}}

response: one item per input, as :meth:`sagefinetune.Predictor.predict` returns them::

    [{"label": "positive", "score": 0.98}, ...]

Kinds (see :doc:`/serve-and-share`): ``"local"`` (an HTTP server on 127.0.0.1 with SageMaker's container contract),
``"realtime"`` and ``"serverless"`` (SageMaker endpoints, billed while they exist). An Endpoint is a context manager;
:meth:`Endpoint.delete` is idempotent and says what it removed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Endpoint", "request_body", "parse_response"]

JSON = "application/json"


def request_body(inputs: Any, parameters: dict[str, Any] | None = None) -> bytes:
    """The JSON request every endpoint kind accepts. ``inputs``: a text, a list of texts, or of (text, pair) tuples."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, Sequence) or not inputs:
        raise ConfigError(f"predict needs a text or a non-empty list of texts; got {inputs!r}. Fix: predict(['a text']).")
    items = [list(i) if isinstance(i, tuple) else i for i in inputs]
    body: dict[str, Any] = {"inputs": items}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def parse_response(body: bytes | str) -> list[Any]:
    """The predictions in an endpoint's JSON answer."""
    data = json.loads(body)
    if not isinstance(data, list):
        raise ValueError(f"an endpoint answered {str(data)[:200]!r}, not a JSON list of predictions")
    return data


class Endpoint:
    """A model answering predictions. Create one with ``run.deploy(...)`` or :meth:`from_model`; never directly.

    Attributes:
        name: the endpoint's name (SageMaker) or the local server's name.
        kind: ``"local"``, ``"realtime"`` or ``"serverless"``.
        url: where it answers (``http://127.0.0.1:<port>`` locally; the SageMaker runtime URL otherwise).
        hourly_cost: USD per hour while it exists (None for serverless, which bills per request: see ``cost_note``).
    """

    kind: str = ""

    def __init__(self, name: str, url: str, hourly_cost: float | None = None, cost_note: str = "") -> None:
        self.name = name
        self.url = url
        self.hourly_cost = hourly_cost
        self.cost_note = cost_note
        self.deleted = False

    # ---- what every kind implements -------------------------------------------------------------------------
    def invoke(self, body: bytes, content_type: str = JSON, accept: str = JSON) -> bytes:
        """Send one raw request; return the raw answer (raises on a 4xx/5xx with the endpoint's message)."""
        raise NotImplementedError

    def _delete(self) -> list[str]:
        """Remove what this endpoint owns; return a description of each thing removed."""
        raise NotImplementedError

    # ---- shared behaviour ----------------------------------------------------------------------------------------
    def predict(self, inputs: Any, **parameters: Any) -> list[Any]:
        """Predictions with label names: ``[{"label": ..., "score": ...}]``, one per input.

        Args:
            inputs: a text, a list of texts, or (for pair models) of ``(text, text_pair)`` tuples.
            **parameters: ``top_k=2`` or ``all_scores=True`` for more than the best label.
        """
        self._check_alive()
        return parse_response(self.invoke(request_body(inputs, parameters or None)))

    def delete(self) -> list[str]:
        """Delete everything this endpoint made (idempotent); returns what was removed, and prints it."""
        if self.deleted:
            return []
        removed = self._delete()
        self.deleted = True
        for item in removed:
            print(f"[sagefinetune] deleted {item}")
        return removed

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.delete()

    def __del__(self) -> None:  # no network here: say what is still running, and what it costs
        if not getattr(self, "deleted", True) and self.kind != "local":
            cost = f" at ${self.hourly_cost:.3f}/h" if self.hourly_cost else ""
            warnings.warn(f"endpoint {self.name} ({self.kind}) is still running{cost}; delete it with "
                          f"sagefinetune.Endpoint.attach({self.name!r}).delete()", ResourceWarning, stacklevel=1)

    def _check_alive(self) -> None:
        if self.deleted:
            raise ConfigError(f"endpoint {self.name} was deleted. Fix: deploy the model again (run.deploy(...)).")

    def __repr__(self) -> str:
        cost = f" ${self.hourly_cost:.3f}/h" if self.hourly_cost else (f" {self.cost_note}" if self.cost_note else "")
        state = " deleted" if self.deleted else ""
        return redact(f"<Endpoint {self.name} {self.kind} {self.url}{cost}{state}>")

    # ---- SageMaker: deploy a model, reconnect, find what is running -----------------------------------------------
    @classmethod
    def from_model(cls, model: str | Path, *, instance: str | None = None, serverless: bool = False,
                   **options: Any) -> Endpoint:
        """Serve a model that did not come from a run.

        Args:
            model: an ``s3://.../model.tar.gz``; a local model folder (packed and uploaded once per content, with
                sagefinetune's handler added as ``code/inference.py`` when it has none); or a Hub id (the container
                downloads it: ``HF_MODEL_ID``).
            instance: a hosting instance type (default ``"ml.m5.xlarge"``), or ``"local"`` for a server on this
                machine (:mod:`sagefinetune.serving`).
            serverless: a serverless endpoint instead (``memory_mb`` 1024..6144 in steps of 1024, default 3072;
                ``max_concurrency`` 1..200, default 5).
            **options: ``instance_count``, ``name`` (default ``<model>-ep-<UTC time>``), ``role`` (default:
                ``$SAGEMAKER_ROLE``), ``region``, ``boto_session``, ``tags`` (added to sagefinetune's own
                ``sagefinetune:*`` tags), ``bucket`` and ``prefix`` (where a folder is uploaded), ``image`` (another
                inference image), ``environment`` (more container variables; no secrets), ``price_per_hour``,
                ``wait`` (default True: until InService), ``timeout``, ``progress``.

        Example:
            >>> ep = Endpoint.from_model("s3://my-bucket/models/model.tar.gz", instance="ml.g4dn.xlarge")  # doctest: +SKIP
            >>> ep.hourly_cost  # doctest: +SKIP
            0.736
        """
        from sagefinetune.deploy import deploy_model

        return deploy_model(model, instance=instance, serverless=serverless, **options)

    @classmethod
    def attach(cls, name: str, *, region: str | None = None, boto_session: Any = None) -> Endpoint:
        """Reconnect to a SageMaker endpoint by name (to predict with it, or to delete it).

        Example:
            >>> Endpoint.attach("sft-all-minilm-l6-v2-ep-20261122-101500").delete()  # doctest: +SKIP
        """
        from sagefinetune.backends.sagemaker.endpoints import ServingBackend

        return ServingBackend(boto_session, region).attach(name)

    @classmethod
    def list(cls, *, region: str | None = None, boto_session: Any = None) -> pd.DataFrame:
        """Every SageMaker endpoint sagefinetune made in the region (found by its tags), oldest first.

        Columns: ``name``, ``kind``, ``status``, ``instance``, ``instance_count``, ``memory_mb``, ``max_concurrency``,
        ``created_at``, ``age_hours``, ``price_per_hour``, ``cost_so_far`` (hourly price x instances x age: an
        estimate; NaN for serverless, which bills per request), ``billing``, ``model``, ``run``.

        Example:
            >>> forgotten = Endpoint.list()  # doctest: +SKIP
            >>> for name in forgotten.name: Endpoint.attach(name).delete()  # doctest: +SKIP
        """
        from sagefinetune.backends.sagemaker.endpoints import ServingBackend

        return ServingBackend(boto_session, region).list()
