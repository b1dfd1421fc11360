"""Endpoint: a trained model that answers predictions, on this machine or on SageMaker, with one JSON contract.

Every kind of endpoint answers the same request with the same JSON, because they all run the same handler
(``entrypoint/inference.py``, written into every model folder as ``code/inference.py``):

``{"inputs": "a text" | ["text", ...] | [["text", "text_pair"], ...], "parameters": {"top_k": 2}}`` (JSON) in,
one answer per input out, as :meth:`sagefinetune.Predictor.predict` returns them: ``[{"label": "positive", ...}]``.

Kinds (see :doc:`/serve-and-share`): ``"local"`` (an HTTP server on 127.0.0.1 with SageMaker's container contract),
``"realtime"`` and ``"serverless"`` (SageMaker endpoints, billed while they exist). An Endpoint is a context manager;
:meth:`Endpoint.delete` is idempotent and says what it removed. With ``ttl=`` it also ends by itself
(``expires_at``, ``extend``); with ``autoscale=(min, max)`` a real-time endpoint scales between min and max instances.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.console import say
from sagefinetune.core.inputs import as_inputs, check_options, short
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.entrypoint.request_body import DEFAULT_MAX_INPUTS, blank_inputs
from sagefinetune.errors import ConfigError, ServingError

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.backends.sagemaker.endpoints import EndpointRecord, ServingBackend
    from sagefinetune.serving.local import LocalServer

__all__ = ["Endpoint", "LocalEndpoint", "SageMakerEndpoint", "deploy_local", "request_body", "parse_response"]

JSON = "application/json"


def request_body(inputs: Any, parameters: dict[str, Any] | None = None) -> bytes:
    """The JSON request every endpoint kind accepts. ``inputs``: what :meth:`Endpoint.predict` takes (a text, a
    ``(text, text_pair)`` tuple, or a collection of them: see :mod:`sagefinetune.core.inputs`), at least one."""
    items = as_inputs(inputs)
    if not items:
        raise ConfigError(f"a request needs at least one input; got {short(inputs)}. Fix: predict(['a text']).")
    body: dict[str, Any] = {"inputs": [list(i) if isinstance(i, tuple) else i for i in items]}
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
        expires_at: when it ends by itself (``ttl=``), in UTC; None: it runs until deleted.
        max_inputs: the most inputs one request may hold (the handler's limit, ``SFT_MAX_INPUTS``); ``predict``
            splits more.
    """

    kind: str = ""
    expires_at: datetime | None = None
    max_inputs: int = DEFAULT_MAX_INPUTS

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

    def extend(self, ttl: str | float) -> datetime:
        """End the endpoint ``ttl`` from now (``"30m"``, ``"4h"``, ``"1d"`` or seconds) instead of at ``expires_at``;
        an endpoint deployed without a ttl gets one. Returns the new ``expires_at``."""
        raise NotImplementedError

    # ---- shared behaviour ----------------------------------------------------------------------------------------
    def predict(self, inputs: Any, *, top_k: int | None = None, all_scores: bool = False) -> list[Any]:
        """Predictions with label names, as :meth:`sagefinetune.Predictor.predict` takes and answers them: a text, a
        ``(text, text_pair)`` tuple (one pair), or any ordered collection of them (a list, a pandas Series, a numpy
        array, a datasets column ``ds["text"]``) in; a list, one answer per input, out (a single text: a list of one;
        no inputs: ``[]``, without a request). ``top_k=2``: the two best labels of each input; ``all_scores=True``:
        every label. Empty texts are refused, as training refuses them. More than :attr:`max_inputs` inputs go in
        several requests, since the endpoint answers 413 above it.

        Example:
            >>> ep.predict("a new phone", top_k=2)  # doctest: +SKIP
            [[{'label': 'tech', 'score': 0.88}, {'label': 'business', 'score': 0.07}]]
        """
        self._check_alive()
        parameters = check_options(top_k, all_scores) or None
        items = as_inputs(inputs)
        blank = blank_inputs(items)
        if blank:
            raise ConfigError(blank)
        out: list[Any] = []  # more than a request may hold (413): several requests, in order
        for start in range(0, len(items), self.max_inputs):
            out += parse_response(self.invoke(request_body(items[start:start + self.max_inputs], parameters)))
        return out

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
            cost += f" until {self.expires_at.isoformat(timespec='minutes')} (ttl)" if self.expires_at else ""
            warnings.warn(f"endpoint {self.name} ({self.kind}) is still running{cost}; delete it with "
                          f"sagefinetune.Endpoint.attach({self.name!r}).delete()", ResourceWarning, stacklevel=1)

    def _check_alive(self) -> None:
        if self.deleted:
            raise ConfigError(f"endpoint {self.name} was deleted. Fix: deploy the model again (run.deploy(...)).")
        if self.expires_at is not None and self.expires_at <= datetime.now(timezone.utc):
            raise ConfigError(f"endpoint {self.name} expired at {self.expires_at:%Y-%m-%d %H:%M:%S} UTC (its ttl) and "
                              "is gone. Fix: deploy the model again, with a longer ttl, or ep.extend(ttl=...) before "
                              "it ends.")

    def __repr__(self) -> str:
        cost = f" ${self.hourly_cost:.3f}/h" if self.hourly_cost else (f" {self.cost_note}" if self.cost_note else "")
        state = " deleted" if self.deleted else f" until {self.expires_at:%Y-%m-%d %H:%M} UTC" if self.expires_at else ""
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
                ``wait`` (default True: until InService), ``timeout``, ``progress``; ``ttl`` (``"4h"``, ``"30m"``,
                ``"1d"`` or seconds, at least 5 minutes: EventBridge Scheduler deletes the endpoint, its config and
                its model then; locally the server exits then) with ``scheduler_role`` (default
                ``$SFT_SCHEDULER_ROLE``: a role scheduler.amazonaws.com may assume, allowed to delete them);
                ``autoscale=(min, max)`` instances (real-time only) with ``target_invocations`` (invocations per
                instance per minute, default 2600). See :doc:`/sagemaker-endpoints`.

        Example:
            >>> ep = Endpoint.from_model("s3://my-bucket/models/model.tar.gz", instance="ml.g4dn.xlarge")  # doctest: +SKIP
            >>> ep.hourly_cost  # doctest: +SKIP
            0.736
        """
        from sagefinetune.plans import deploy as deploy_plan

        ref = deploy_plan.model_ref(model)
        if instance == "local" and not serverless:
            return deploy_local(deploy_plan.local_folder(ref), **options)
        if ref.kind == "folder" and (Path(ref.location) / "model.onnx").is_file():
            raise ConfigError(f"{ref.location} is an ONNX export; SageMaker's Hugging Face inference container runs "
                              "PyTorch models only. Fix: serve the export here (instance='local', or Predictor), or "
                              "deploy the PyTorch model folder (run.model_dir) to SageMaker.")
        options = {**options, "instance": instance, "serverless": serverless}
        deploy_plan.check_options(options)
        backend = serving_backend(options)
        return SageMakerEndpoint(backend.deploy(ref, options), backend)

    @classmethod
    def attach(cls, name: str, *, region: str | None = None, boto_session: Any = None) -> Endpoint:
        """Reconnect to a SageMaker endpoint by name (to predict with it, or to delete it).

        Example:
            >>> Endpoint.attach("sft-all-minilm-l6-v2-ep-20261122-101500").delete()  # doctest: +SKIP
        """
        from sagefinetune.backends.sagemaker.endpoints import ServingBackend

        backend = ServingBackend(boto_session, region)
        return SageMakerEndpoint(backend.attach(name), backend)

    @classmethod
    def list(cls, *, region: str | None = None, boto_session: Any = None) -> pd.DataFrame:
        """Every SageMaker endpoint sagefinetune made in the region (found by its tags), oldest first.

        Columns: ``name``, ``kind``, ``status``, ``instance``, ``instance_count`` (now), ``memory_mb``,
        ``max_concurrency``, ``created_at``, ``age_hours``, ``price_per_hour``, ``cost_so_far`` (hourly price x
        instances x age: an estimate; NaN for serverless, which bills per request), ``billing``, ``expires_at`` (UTC,
        when its ttl deletes it; None: never), ``autoscale`` ((min, max) instances; None: fixed), ``model``, ``run``.

        Example:
            >>> forgotten = Endpoint.list()  # doctest: +SKIP
            >>> for name in forgotten.name: Endpoint.attach(name).delete()  # doctest: +SKIP
        """
        from sagefinetune.backends.sagemaker.endpoints import ServingBackend

        return ServingBackend(boto_session, region).list()


class LocalEndpoint(Endpoint):
    """A model answering on ``http://127.0.0.1:<port>`` with SageMaker's container contract. No charge.

    Create one with ``run.deploy(instance="local")`` or :func:`deploy_local`. ``delete()`` (or leaving a ``with``
    block) sends SIGTERM, which finishes the requests in flight; the server also stops when this Python process ends.

    Attributes:
        model_dir: the model folder served.
        pid: the server process id.
        log_path: the server's log (start-up, errors with tracebacks).
    """

    kind = "local"

    def __init__(self, server: LocalServer) -> None:
        super().__init__(server.name, server.url, hourly_cost=None, cost_note="local: no charge")
        self.server = server
        self.expires_at = server.expires_at
        self.max_inputs = server.max_inputs or DEFAULT_MAX_INPUTS
        self.model_dir = server.model_dir
        self.log_path = server.log_path

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def running(self) -> bool:
        return self.server.running

    def extend(self, ttl: str | float) -> datetime:
        """Move the server's exit to ``ttl`` from now (it re-reads its deadline every second)."""
        self._check_alive()
        self.expires_at = self.server.extend(ttl)
        return self.expires_at

    def invoke(self, body: bytes, content_type: str = JSON, accept: str = JSON) -> bytes:
        """POST ``body`` to ``/invocations``; the answer's bytes, or :class:`~sagefinetune.EndpointError`."""
        self._check_alive()
        return self.server.invoke(body, content_type, accept)

    def _delete(self) -> list[str]:
        return self.server.stop()


def deploy_local(model_dir: str | Path, *, port: int = 0, host: str = "127.0.0.1", **options: Any) -> LocalEndpoint:
    """Serve a model folder over HTTP on this machine, in a server subprocess; returns when it answers ``/ping``.

    Args:
        model_dir: a model folder (``run.model_dir``, or any ``save_pretrained`` folder of a text classifier), or an
            ONNX export (``run.export("onnx", quantize="int8").path``), served by ONNX Runtime with the same JSON.
        port: the port (0: a free one; see ``endpoint.url``).
        host: the address to bind; the default 127.0.0.1 is reachable from this machine only.
        **options: ``max_batch_size`` (most inputs in one batch; default 32 for PyTorch, 4 for ONNX, where a batch
            runs as one pass per input), ``max_wait_ms`` (5: how long a batch waits for requests in flight while no
            other worker is free), ``max_body_mb`` (6, SageMaker's limit: larger bodies get 413), ``grace`` (30 s to
            finish requests in flight on delete), ``startup_timeout`` (300 s), ``timeout`` (120 s per
            request), ``workers`` (forward passes at once: 2, or 1 on one core) and ``threads`` (torch threads per
            pass: the cores / workers), ``precision`` (``"auto"``: bf16 where the device computes bf16
            natively, else fp32; ``"fp32"``; or ``"bf16"``; see :doc:`/serve-and-share`), ``python`` (the
            interpreter that runs the server), ``log_path`` (the server's log file), ``ttl`` (``"30m"``, ``"4h"`` or
            seconds: the server exits by itself then, even if this process is gone; ``ep.extend(ttl=...)`` moves it),
            ``max_inputs`` (1024: most inputs per request, 413 above; ``ep.predict`` sends more in several requests).

    Example:
        >>> with deploy_local(run.model_dir) as ep:  # doctest: +SKIP
        ...     ep.predict(["The striker scored twice."])
        [{'label': 'sports', 'score': 0.97}]
    """
    from sagefinetune.serving.local import start_server

    options = {k: v for k, v in options.items() if k not in ("instance", "serverless")}
    return LocalEndpoint(start_server(model_dir, port=port, host=host, **options))


class SageMakerEndpoint(Endpoint):
    """A SageMaker real-time or serverless endpoint. Create one with ``run.deploy(instance="ml.m5.xlarge")``,
    ``run.deploy(serverless=True)``, :meth:`Endpoint.from_model` or :meth:`Endpoint.attach`.

    Attributes:
        region: the AWS region it runs in.
        instance, instance_count: the hosting instances (None for serverless).
        memory_mb, max_concurrency: the serverless configuration (None for real-time).
        hourly_cost: USD per hour for all its instances while it exists (None for serverless: see ``cost_note``).
        config_name, model_names: the endpoint config and the models behind it, which :meth:`delete` removes too.
        owned: made by sagefinetune (tagged); an endpoint that is not has only itself deleted, not its config and model.
        expires_at: when EventBridge Scheduler deletes it (``ttl=``), in UTC; None: it runs until deleted.
        autoscale: ``(min, max)`` instances it scales between (``autoscale=``); None: a fixed ``instance_count``.

    Example:
        >>> with run.deploy(instance="ml.m5.xlarge") as ep:  # doctest: +SKIP
        ...     ep.predict(["i liked the movie"])
        [{'label': 'positive', 'score': 0.98}]
    """

    def __init__(self, record: EndpointRecord, backend: ServingBackend) -> None:
        from sagefinetune.facts.hosting import serverless_line

        hourly = record.price_per_hour * record.instance_count if record.price_per_hour is not None else None
        super().__init__(record.name, record.url, hourly, serverless_line(record.memory_mb) if record.memory_mb else "")
        self.record = record
        self.kind = record.kind
        self.region = record.region
        self.instance, self.instance_count = record.instance, record.instance_count
        self.memory_mb, self.max_concurrency = record.memory_mb, record.max_concurrency
        self.config_name, self.model_names, self.owned = record.config_name, record.model_names, record.owned
        self.status = record.status
        self.expires_at, self.autoscale = record.expires_at, record.autoscale
        self._backend = backend

    def invoke(self, body: bytes, content_type: str = JSON, accept: str = JSON) -> bytes:
        """One InvokeEndpoint call; a container's 4xx/5xx is a :class:`~sagefinetune.errors.ServingError`."""
        self._check_alive()
        return self._backend.invoke(self.name, body, content_type, accept)

    def refresh(self) -> str:
        """The endpoint's status now (``Creating``, ``InService``, ``Failed``, ...)."""
        self.status = self._backend.status(self.name)
        return self.status

    def wait(self, timeout: float | None = None) -> SageMakerEndpoint:
        """Wait until it is InService (raises :class:`~sagefinetune.errors.ServingError` if it fails)."""
        try:
            self.status = self._backend.wait_in_service(self.record, timeout)
        except ServingError as exc:
            self.deleted = exc.operation == "CreateEndpoint"  # it failed, and the backend deleted it
            raise
        return self

    def extend(self, ttl: str | float, *, scheduler_role: str | None = None) -> datetime:
        """Move the schedules that delete it (and its ``sagefinetune:expires-at`` tag) to ``ttl`` from now.

        An endpoint deployed without a ttl gets its schedules now, as ``scheduler_role`` (default: ``$SFT_SCHEDULER_ROLE``).

        Example:
            >>> ep.extend(ttl="2h")  # doctest: +SKIP
            datetime.datetime(2026, 11, 22, 14, 15, tzinfo=datetime.timezone.utc)
        """
        from dataclasses import replace

        self._check_alive()
        expires = self._backend.extend(self.record, ttl, scheduler_role)
        self.record, self.expires_at = replace(self.record, expires_at=expires), expires
        return expires

    def _delete(self) -> list[str]:
        removed = self._backend.delete_owned(self.record)
        if not self.owned and (self.config_name or self.model_names):
            say(f"{self.name} was not made by sagefinetune: its endpoint config {self.config_name} and model(s) "
                f"{', '.join(self.model_names)} are left as they are", True)
        return removed


def serving_backend(options: Mapping[str, Any], session: Any = None, region: str | None = None) -> ServingBackend:
    """The SageMaker serving backend for ``options``: their session and region, else ``session`` / ``region`` (a
    SageMaker run's own), else the default credential chain's."""
    from sagefinetune.backends.sagemaker.endpoints import ServingBackend
    from sagefinetune.core.checks import boolean, positive_number
    from sagefinetune.plans import deploy as deploy_plan

    given_session, given_region = options.get("boto_session"), options.get("region")
    if given_region is not None:
        deploy_plan.check_region(given_region)
    progress = boolean("progress", options.get("progress", True), "progress=False")
    poll = positive_number("poll_seconds", options.get("poll_seconds", 15.0), "poll_seconds=15")
    if given_session is None and given_region is None:
        given_session, given_region = session, region
    return ServingBackend(given_session, given_region, progress=progress, poll_seconds=poll)
