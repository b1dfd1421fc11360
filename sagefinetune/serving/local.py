"""LocalServer: a model served over HTTP on this machine by a server subprocess (the local endpoint's backend).

Why a subprocess rather than a thread of the caller: the server keeps its own interpreter, so a caller busy in
Python (16 client threads, a notebook cell) cannot starve it of the GIL; it can be sent SIGTERM and shut down the
way a container does, finishing the requests in flight; and a crash in the model cannot take the caller down.
It costs a few seconds of start-up (importing torch and loading the model), paid once per deploy.

With ``ttl=`` the server exits by itself at its deadline, which it reads from a file in its working folder every
second: it holds even if the client process is gone, and :meth:`LocalServer.extend` moves it by rewriting the file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sagefinetune.core.checks import check_precision
from sagefinetune.entrypoint.request_body import DEFAULT_MAX_INPUTS
from sagefinetune.entrypoint.serving_choice import RUNTIMES
from sagefinetune.errors import ConfigError, EndpointError, did_you_mean

__all__ = ["LocalServer", "start_server", "LOCAL_OPTIONS"]

JSON = "application/json"

#: Options of a local endpoint, with their defaults.
LOCAL_OPTIONS: dict[str, Any] = {
    "max_batch_size": None, "max_wait_ms": 5.0, "max_body_mb": 6.0, "grace": 30.0, "startup_timeout": 300.0,
    "timeout": 120.0, "workers": None, "threads": None, "precision": "auto", "python": None, "log_path": None,
    "ttl": None,
    "max_inputs": None, "runtime": "auto",
}
#: Options that only a SageMaker endpoint takes (no "did you mean" among the local ones for these).
SAGEMAKER_OPTIONS = {"serverless", "memory_mb", "max_concurrency", "instance_count", "role", "bucket", "region",
                     "tags", "endpoint_name", "wait", "boto_session", "environment", "transformers_version",
                     "scheduler_role", "autoscale", "target_invocations"}
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never send 127.0.0.1 through a proxy


class LocalServer:
    """A server subprocess answering on ``http://127.0.0.1:<port>`` with SageMaker's container contract.

    Made by :func:`start_server`; :class:`sagefinetune.endpoint.LocalEndpoint` wraps it. :meth:`stop` sends SIGTERM,
    which finishes the requests in flight; the server also stops when this Python process ends.

    Attributes:
        model_dir: the model folder served.
        log_path: the server's log (start-up, errors with tracebacks).
        expires_at: when the server exits by itself (``ttl=``), in UTC; None: it runs until stopped.
        max_inputs: the most inputs a request may hold (413 above).
    """

    def __init__(self, name: str, url: str, *, model_dir: Path, process: subprocess.Popen[bytes], log_path: Path,
                 timeout: float, grace: float, workdir: Path | None = None, deadline_file: Path | None = None,
                 expires_at: datetime | None = None, max_inputs: int | None = None) -> None:
        self.name = name
        self.max_inputs = max_inputs
        self.url = url
        self.model_dir = model_dir
        self.log_path = log_path
        self.timeout = timeout
        self.grace = grace
        self._process = process
        self._workdir = workdir
        self.deadline_file = deadline_file
        self.expires_at = expires_at
        self._finalizer = weakref.finalize(self, _terminate, process, grace)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def invoke(self, body: bytes, content_type: str = JSON, accept: str = JSON) -> bytes:
        """POST ``body`` to ``/invocations``; the answer's bytes, or :class:`EndpointError` with its status."""
        request = urllib.request.Request(f"{self.url}/invocations", data=body, method="POST",
                                         headers={"Content-Type": content_type, "Accept": accept})
        try:
            with _NO_PROXY.open(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            message = _message(exc.read())
            raise EndpointError(f"local endpoint {self.name} answered {exc.code}: {message}", endpoint=self.name,
                                status=exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            state = "is running" if self.running else f"exited with code {self._process.returncode}"
            raise EndpointError(f"local endpoint {self.name} at {self.url} did not answer ({exc}); its server {state}. "
                                f"Fix: read {self.log_path}, then deploy again.", endpoint=self.name) from exc

    def extend(self, ttl: str | float) -> datetime:
        """Move the server's exit to ``ttl`` from now; the new ``expires_at``."""
        from sagefinetune.plans.expiry import parse_ttl

        seconds = parse_ttl(ttl, minimum=0)
        if not self.running or self.deadline_file is None:
            raise EndpointError(f"local endpoint {self.name} " + ("has stopped" if not self.running else
                                "was started without a ttl") + ". Fix: deploy again, with ttl=...", endpoint=self.name)
        self.expires_at = write_deadline(self.deadline_file, seconds)
        return self.expires_at

    def stop(self) -> list[str]:
        """SIGTERM, then SIGKILL after the grace period; the working folder goes when the stop was clean."""
        self._finalizer.detach()
        code = _terminate(self._process, self.grace)
        if code == 0 and self._workdir is not None and self.log_path.parent == self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)  # a clean stop: nothing to read in its log
        return [f"local endpoint {self.name} (server pid {self.pid} at {self.url}, exit code {code})"]


def start_server(model_dir: str | Path, *, port: int = 0, host: str = "127.0.0.1", **options: Any) -> LocalServer:
    """Serve a model folder over HTTP on this machine, in a server subprocess; returns when it answers ``/ping``.

    The public face is :func:`sagefinetune.endpoint.deploy_local` (the arguments and options are documented there),
    which wraps the server in an Endpoint.
    """
    from sagefinetune.core.deps import require
    from sagefinetune.runtime.predict import check_model_dir

    settings = _check_options(options, port, host)
    folder = check_model_dir(model_dir).resolve()
    chosen = choose_runtime(folder, settings["runtime"], settings["precision"])
    runtime = "onnxruntime" if chosen.runtime == "onnx" else "transformers"  # ONNX needs no torch
    for module in ("uvicorn", "starlette", runtime):
        require(module, "serve a local endpoint")
    work = Path(tempfile.mkdtemp(prefix="sft-serve-"))
    log_path = Path(settings["log_path"] or work / "server.log")
    port_file = work / "port.json"
    deadline_file = work / "deadline.json" if settings["ttl"] is not None else None
    expires_at = write_deadline(deadline_file, settings["ttl"]) if deadline_file else None
    command = _server_command(folder, host, port, port_file, settings) + (
        ["--deadline-file", str(deadline_file)] if deadline_file else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p),
           "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # Ctrl-C in the caller's terminal goes to the caller only
    try:
        bound = _wait_until_ready(process, port_file, host, log_path, settings["startup_timeout"])
    except BaseException:
        _terminate(process, 5)
        raise
    shown = f"[{host}]" if ":" in host else host
    label = folder.parent.name if folder.name == "model" else folder.name
    server = LocalServer(f"local-{label}-{bound}", f"http://{shown}:{bound}", model_dir=folder, process=process,
                         log_path=log_path, timeout=settings["timeout"], grace=settings["grace"], workdir=work,
                         deadline_file=deadline_file, expires_at=expires_at,
                         max_inputs=settings["max_inputs"] or DEFAULT_MAX_INPUTS)
    until = f"; it stops at {expires_at:%H:%M:%S} UTC" if expires_at else ""
    print(f"[sagefinetune] local endpoint {server.name} at {server.url} (no charge; log {log_path}{until})")
    return server


def choose_runtime(folder: Path, runtime: str, precision: str) -> Any:
    """What serves the folder (:func:`sagefinetune.serving.classifiers.choice`), after the check at deploy
    (:func:`sagefinetune.runtime.serving_check.check_serving`, cached in ``serving.json``) when nothing overrides it;
    says what was chosen and why."""
    from sagefinetune.runtime.serving_check import check_serving
    from sagefinetune.serving.classifiers import choice, is_onnx

    if runtime != "pytorch" and precision == "auto" and not is_onnx(folder):
        check_serving(folder)
    try:
        chosen = choice(folder, runtime, precision)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    override = "" if runtime != "auto" or precision != "auto" or is_onnx(folder) else (
        " Override: deploy(runtime='pytorch') or deploy(precision='fp32').")
    print(f"[sagefinetune] serving {chosen.why}.{override}", flush=True)
    return chosen


def _server_command(folder: Path, host: str, port: int, port_file: Path, settings: dict[str, Any]) -> list[str]:
    command = [settings["python"] or sys.executable, "-m", "sagefinetune.serving", str(folder), "--host", host,
               "--port", str(port), "--port-file", str(port_file), "--parent-pid", str(os.getpid())]
    for name in ("max_batch_size", "max_wait_ms", "max_body_mb", "grace", "workers", "threads", "precision",
                 "max_inputs", "runtime"):
        if settings[name] is not None:
            command += [f"--{name.replace('_', '-')}", str(settings[name])]
    return command


def _check_options(options: dict[str, Any], port: Any, host: Any) -> dict[str, Any]:
    unknown = sorted(set(options) - set(LOCAL_OPTIONS))
    if unknown:
        hint = "" if set(unknown) & SAGEMAKER_OPTIONS else did_you_mean(unknown[0], list(LOCAL_OPTIONS))
        what = f"{unknown[0]} is not an option" if len(unknown) == 1 else f"{', '.join(unknown)} are not options"
        raise ConfigError(f"{what} of a local endpoint{hint or '.'} "
                          f"Local options: port, host, {', '.join(LOCAL_OPTIONS)}. Fix: drop them, or deploy on "
                          "SageMaker (instance='ml.m5.xlarge' or serverless=True), where instance and memory options apply.")
    settings = {**LOCAL_OPTIONS, **options}
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be a whole number in [0, 65535]; got {port!r}. Fix: port=8080, or 0 for any free port.")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"host must be an address such as '127.0.0.1'; got {host!r}.")
    for name, low in (("max_wait_ms", 0), ("max_body_mb", 0.001), ("grace", 0),
                      ("startup_timeout", 1), ("timeout", 0.001)):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise ConfigError(f"{name} must be a number >= {low}; got {value!r}. Fix: {name}={LOCAL_OPTIONS[name]!r}.")
    for name in ("max_batch_size", "workers", "threads", "max_inputs"):
        value = settings[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a whole number >= 1; got {value!r}. Fix: {name}=2.")
    check_precision(settings["precision"])
    if settings["runtime"] not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}; got {settings['runtime']!r}. Fix: "
                          "runtime='auto' (what the check at deploy chose), 'pytorch' or 'onnx' (the int8 export).")
    if settings["ttl"] is not None:
        from sagefinetune.plans.expiry import parse_ttl

        settings["ttl"] = parse_ttl(settings["ttl"], minimum=0)  # seconds; the server watches the deadline itself
    return settings


def write_deadline(path: Path, seconds: float) -> datetime:
    """Write ``{"expires_at": <epoch seconds>}`` atomically (the server never reads half a file); the deadline."""
    deadline = time.time() + seconds
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"expires_at": deadline}))
    os.replace(tmp, path)
    return datetime.fromtimestamp(deadline, timezone.utc)


def _wait_until_ready(process: subprocess.Popen[bytes], port_file: Path, host: str, log_path: Path,
                      timeout: float) -> int:
    """The bound port, once the server answers /ping; an error with the log's tail if it exits or hangs."""
    deadline = time.monotonic() + timeout
    port = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(f"the local endpoint's server exited with code {process.returncode} while starting:\n"
                                f"{_tail(log_path)}\nFix: read {log_path}.")
        if port is None and port_file.exists():
            port = int(json.loads(port_file.read_text())["port"])
        if port is not None and _ping(host, port):
            return port
        time.sleep(0.1)
    raise EndpointError(f"the local endpoint's server did not answer /ping within {timeout:g}s:\n{_tail(log_path)}\n"
                        "Fix: deploy with a larger startup_timeout on a busy machine, or read the log.")


def _ping(host: str, port: int) -> bool:
    shown = f"[{host}]" if ":" in host else host
    try:
        with _NO_PROXY.open(f"http://{shown}:{port}/ping", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _terminate(process: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM (the server finishes its requests in flight), then SIGKILL after ``grace`` + 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace + 10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:500]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
