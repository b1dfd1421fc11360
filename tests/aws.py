"""A moto server that the tests start themselves: S3, SageMaker and CloudWatch Logs over HTTP on 127.0.0.1.

The real sagemaker SDK and boto3 talk to it. Two moto quirks are handled here, in the tests, not in the library:
moto answers some fields with empty structures that sagemaker-core's shapes reject (dropped after each call), and
moto overwrites the metric definitions it stores (the request is captured as it was sent).

What was called is recorded twice: by the sessions of :meth:`Moto.session` (each operation with its parameters, in
``sent``), and by the server itself (``received``: every request, from any client, session or process), so that
``calls() == []`` holds only when nothing reached the server at all.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagefinetune-test"
BUCKET = "sft-test-bucket"


def drop_empty(parsed: Any, **_: Any) -> None:
    if isinstance(parsed, dict):
        for key in [k for k, v in parsed.items() if v == {}]:
            del parsed[key]
        for value in parsed.values():
            drop_empty(value)
    elif isinstance(parsed, list):
        for value in parsed:
            drop_empty(value)


class Sent(dict):
    """Operation name -> the parameters of each call; ``clear()`` also forgets what the server received."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []

    def clear(self) -> None:
        super().clear()
        self.received.clear()


def operation(environ: dict[str, Any]) -> str:
    """A request as the server saw it: the JSON protocol's target (``SageMaker.CreateModel``), else method and path."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target
    query = environ.get("QUERY_STRING", "")
    return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}" + (f"?{query}" if query else "")


class Recording:
    """WSGI middleware in front of moto: notes every request except moto's own API (reset)."""

    def __init__(self, app: Any, sent: Sent) -> None:
        self.app, self.sent = app, sent

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO", "").startswith("/moto-api/"):
            self.sent.received.append(operation(environ))
        return self.app(environ, start_response)


@dataclass
class Moto:
    url: str
    env: dict[str, str]
    sent: Sent = field(default_factory=Sent)

    def session(self):
        """A boto3 session on the server that records what was sent."""
        import boto3

        session = boto3.Session(region_name=REGION)
        session.events.register("after-call.sagemaker", lambda parsed, **kw: drop_empty(parsed))
        session.events.register("provide-client-params.*.*", self._record)
        return session

    def _record(self, params: dict[str, Any], model: Any = None, **_: Any) -> None:
        self.sent.setdefault(model.name, []).append(json.loads(json.dumps(params, default=str)))

    def calls(self) -> list[str]:
        """The operations the recording sessions sent, and every request the server received that they did not name
        (from a session or client the tests did not make), as the server saw it."""
        named = set(self.sent)
        return sorted(named) + sorted({r for r in self.sent.received if r.split(".")[-1] not in named})

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")).read()
        self.sent.clear()

    def training_job(self, name: str) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT][REGION].training_jobs[name]


def start() -> tuple[Any, Moto]:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    moto = Moto(url, {})
    server._server.app = Recording(server._server.app, moto.sent)  # werkzeug reads server.app for each request
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_MAX_ATTEMPTS": "1",
        "SAGEMAKER_VALIDATE_ROLE": "false",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    }
    moto.env = env
    return server, moto
