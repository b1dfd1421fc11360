"""Experiment tracking settings (pure): what ``job.track(...)`` holds, what a plan resolves it to, what a run reports.

- :class:`TrackingSettings`: the Job's choice, checked at the builder call (tracker, experiment, URI form).
- :class:`TrackingSpec`: the plan's, with the URI resolved (the default store here) and the rules that need the
  backend checked: a SageMaker job cannot write into a store on this machine, and with network isolation it reaches
  no server at all.
- :class:`Tracking`: a run's URI, experiment and run id (``run.tracking``).

The settings reach the entry point as environment variables (:mod:`sagefinetune.entrypoint.tracking` names them),
never as hyperparameters.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagefinetune.entrypoint import tracking as entry
from sagefinetune.errors import ConfigError, did_you_mean

__all__ = ["TrackingSettings", "TrackingSpec", "Tracking", "check_tracking", "tracking_spec", "default_uri",
           "REQUIREMENTS"]

TRACKERS = entry.TRACKERS
DEFAULT_EXPERIMENT = "sagefinetune"
DEFAULT_STORE = "mlruns"  # ./mlruns/mlflow.db, artifacts in ./mlruns/artifacts/
#: What a SageMaker job pip-installs when tracking is on (the plugin signs requests to SageMaker's MLflow with SigV4).
REQUIREMENTS = ("mlflow-skinny>=2.16", "sagemaker-mlflow>=0.1")
SAGEMAKER_ARN = re.compile(r"arn:aws[a-z-]*:sagemaker:[a-z]{2}(-[a-z]+)+-\d:\d{12}:(mlflow-tracking-server|mlflow-app)/"
                           r"[A-Za-z0-9][A-Za-z0-9-]{0,255}")
REMOTE_SCHEMES = ("http", "https", "databricks")
LOCAL_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql")
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\]|0\.0\.0\.0)$", re.I)


def default_uri(cwd: str | Path | None = None) -> str:
    """``sqlite:///<cwd>/mlruns/mlflow.db``: MLflow's recommended local store (MLflow 3 refuses a bare ``./mlruns``
    file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set), as an absolute URI, so the training process, which runs in
    its own folder, writes where this process reads."""
    return f"sqlite:///{(Path(cwd or os.getcwd()) / DEFAULT_STORE / 'mlflow.db').resolve().as_posix()}"


def _scheme(uri: str) -> str:
    if uri.startswith("arn:"):
        return "arn"
    match = re.match(r"^([a-z][a-z0-9+.-]*):", uri)
    if match is None or len(match.group(1)) == 1:  # a path, or a Windows drive letter
        return "path"
    return match.group(1).split("+")[0]


def check_uri(uri: Any) -> str | None:
    """A tracking URI's form: a path or ``file:``/``sqlite:``/database URI, ``http(s)://host``, ``databricks``, or a
    SageMaker MLflow tracking server (or app) ARN; no credentials inside it."""
    if uri is None:
        return None
    fix = ("Fix: uri=None (./mlruns/mlflow.db), uri='sqlite:///path/mlflow.db', uri='https://mlflow.example.com', or "
           "uri='arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>'.")
    if not isinstance(uri, (str, Path)) or not str(uri).strip() or re.search(r"\s", str(uri)):
        raise ConfigError(f"track(uri=...) must be a tracking URI or a folder; got {uri!r}. {fix}")
    text = str(uri)
    scheme = _scheme(text)
    if scheme == "arn" and not SAGEMAKER_ARN.fullmatch(text):
        raise ConfigError(f"track(uri={text!r}) is not the ARN of a SageMaker MLflow tracking server or app "
                          "(arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>). " + fix)
    if scheme not in ("arn", "path", *REMOTE_SCHEMES, *LOCAL_SCHEMES):
        raise ConfigError(f"track(uri={text!r}): {scheme!r} is not a tracking URI scheme MLflow reads. {fix}")
    if scheme in ("http", "https") and not re.match(r"^https?://[^/?#\s]+", text):
        raise ConfigError(f"track(uri={text!r}) names no host. {fix}")
    if re.match(r"^[a-z+]+://[^/@]*:[^/@]*@", text):
        raise ConfigError(f"track(uri=...) holds a password ({re.sub(r'://[^@]*@', '://***@', text)}); a job records "
                          "its settings in plain text. Fix: the URI without credentials, and MLFLOW_TRACKING_USERNAME/"
                          "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in this process's environment.")
    if scheme == "path":
        return f"sqlite:///{(Path(text).expanduser().resolve() / 'mlflow.db').as_posix()}"
    if text.startswith("sqlite:///") and not text.startswith("sqlite:////"):  # relative: the training process runs
        return f"sqlite:///{Path(text[len('sqlite:///'):]).resolve().as_posix()}"  # in its own folder
    return text


@dataclass(frozen=True)
class TrackingSettings:
    """What ``job.track(...)`` asked for: the tracker, the experiment, the URI (None: the default store)."""

    tracker: str
    experiment: str
    uri: str | None = None


def check_tracking(tracker: Any, experiment: Any, uri: Any) -> TrackingSettings:
    """The builder's checks: a known tracker, an experiment name, a tracking URI's form.

    >>> check_tracking("mlflow", "reviews", "https://mlflow.example.com")
    TrackingSettings(tracker='mlflow', experiment='reviews', uri='https://mlflow.example.com')
    """
    if tracker not in TRACKERS:
        raise ConfigError(f"unknown tracker {tracker!r}{did_you_mean(str(tracker), TRACKERS)} sagefinetune tracks "
                          f"with {', '.join(TRACKERS)}. Fix: job.track('mlflow', experiment='reviews').")
    if (not isinstance(experiment, str) or not experiment.strip() or len(experiment) > 256
            or any(ord(c) < 32 for c in experiment)):
        raise ConfigError(f"track(experiment=...) must be a name of 1 to 256 printable characters; got "
                          f"{experiment!r}. Fix: job.track('mlflow', experiment='reviews').")
    return TrackingSettings(str(tracker), experiment, check_uri(uri))


@dataclass(frozen=True)
class TrackingSpec:
    """The plan's tracking: the tracker, the resolved URI and the experiment."""

    tracker: str
    uri: str
    experiment: str

    def to_dict(self) -> dict[str, Any]:
        return {"tracker": self.tracker, "uri": self.uri, "experiment": self.experiment}

    def line(self) -> str:
        return f"  tracking     {self.tracker} {self.uri}, experiment {self.experiment!r}"

    def environment(self, run_id: str | None = None, run_name: str | None = None,
                    params: dict[str, Any] | None = None) -> dict[str, str]:
        """The variables the entry point reads (:mod:`sagefinetune.entrypoint.tracking`)."""
        env = {entry.TRACKER: self.tracker, entry.URI: self.uri, entry.EXPERIMENT: self.experiment}
        if run_id:
            env[entry.RUN_ID] = run_id
        if run_name:
            env[entry.RUN_NAME] = run_name
        if params:
            env[entry.PARAMS] = json.dumps(params, sort_keys=True, default=str)
        return env


def tracking_spec(settings: TrackingSettings, backend: str, *, network_isolation: bool = False,
                  cwd: str | Path | None = None) -> TrackingSpec:
    """Resolve the URI for ``backend``; a store on this machine is refused for a SageMaker job, before anything.

    >>> tracking_spec(TrackingSettings("mlflow", "r"), "local", cwd="/tmp/w").uri
    'sqlite:////tmp/w/mlruns/mlflow.db'
    """
    uri = settings.uri or default_uri(cwd)
    if backend != "sagemaker":
        return TrackingSpec(settings.tracker, uri, settings.experiment)
    scheme = _scheme(uri)
    shown = "uri=None (./mlruns/mlflow.db on this machine)" if settings.uri is None else f"uri={uri!r}"
    fix = ("Fix: track('mlflow', uri='arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>') (SageMaker "
           "managed MLflow) or an https:// server the job can reach; or train here (instance='local') with a local "
           "store.")
    if scheme not in ("arn", *REMOTE_SCHEMES):
        raise ConfigError(f"track(...) with {shown} is a store on this machine, which a SageMaker job cannot write "
                          f"to. {fix}")
    host = re.sub(r"^https?://([^/:?#]+).*$", r"\1", uri)
    if scheme in ("http", "https") and LOOPBACK.match(host):
        raise ConfigError(f"track(uri={uri!r}) is this machine's loopback address; a SageMaker job cannot reach it. "
                          f"{fix}")
    if network_isolation:
        raise ConfigError(f"track(uri={uri!r}) with network_isolation=True: the job can reach no tracking server "
                          "(nor install mlflow). Fix: network_isolation=False, or drop track(...).")
    return TrackingSpec(settings.tracker, uri, settings.experiment)


@dataclass(frozen=True)
class Tracking:
    """Where a run is tracked: ``run.tracking.uri``, ``.experiment``, ``.run_id``.

    Read it back with MLflow: ``MlflowClient(run.tracking.uri).get_run(run.tracking.run_id)``.
    """

    uri: str
    experiment: str
    run_id: str

    def to_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "experiment": self.experiment, "run_id": self.run_id}

    @classmethod
    def from_environment(cls, env: dict[str, str]) -> Tracking | None:
        """From a job's environment (DescribeTrainingJob's ``Environment``), when it was tracked with a run id."""
        if env.get(entry.TRACKER) and env.get(entry.URI) and env.get(entry.RUN_ID):
            return cls(env[entry.URI], env.get(entry.EXPERIMENT, ""), env[entry.RUN_ID])
        return None
