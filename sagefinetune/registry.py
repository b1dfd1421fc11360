"""Registry: the versions of a model, with their metrics and approval status, in a folder here or in SageMaker.

A pipeline registers each model that passes its condition as the next version of a group: ``run_local()`` into a
folder (``sft-registry/<group>/v<N>/``: the model folder and ``version.json``), a SageMaker pipeline into a model
package group. The same object reads both:

    >>> reg = Registry("reviews-models", path=tmp)
    >>> [v.version for v in reg.versions()]
    []

Statuses are SageMaker's: ``PendingManualApproval``, ``Approved``, ``Rejected``. Only an approved version deploys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.endpoint import Endpoint

__all__ = ["Registry", "ModelVersion", "STATUSES"]

STATUSES = ("PendingManualApproval", "Approved", "Rejected")
DEFAULT_PATH = "sft-registry"
VERSION_FILE = "version.json"
_GROUP = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def check_group(name: Any) -> str:
    if not isinstance(name, str) or not _GROUP.fullmatch(name):
        raise ConfigError(f"model group {name!r} must be 1-63 letters, digits and '-' (SageMaker's rule for model "
                          "package groups). Fix: register='reviews-models'.")
    return name


def check_status(status: Any) -> str:
    if status not in STATUSES:
        raise ConfigError(f"approval status {status!r} is not one of {', '.join(STATUSES)}. "
                          "Fix: approval='PendingManualApproval' (or 'Approved').")
    return str(status)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model.

    Attributes:
        group: the model group (a folder here, a model package group on SageMaker).
        version: 1, 2, ... in registration order.
        status: ``PendingManualApproval``, ``Approved`` or ``Rejected``.
        metrics: the evaluation step's metrics (``eval_f1``, ``eval_accuracy``, ...).
        labels: the class names, in id order.
        model: the model folder (here) or the ``s3://.../model.tar.gz`` (SageMaker).
        inference_image: the Hugging Face inference image paired with the training image.
        created: when it was registered (UTC, ISO 8601).
        source: where it came from (pipeline, run or training job, data hash).
        arn: the model package ARN (SageMaker).
    """

    group: str
    version: int
    status: str
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    labels: tuple[str, ...] = ()
    model: str = ""
    inference_image: str | None = None
    created: str = ""
    source: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out.update(metrics=dict(self.metrics), labels=list(self.labels), source=dict(self.source))
        return out

    def __repr__(self) -> str:
        shown = {k: round(v, 4) for k, v in self.metrics.items() if k in ("eval_accuracy", "eval_f1", "eval_f1_micro")}
        return f"<ModelVersion {self.group} v{self.version} {self.status} {shown}>"


class Registry:
    """The versions of one model group, here (a folder) or in SageMaker's model registry.

    Args:
        group: the group's name (``register=`` of :meth:`sagefinetune.Job.pipeline`).
        backend: ``"local"`` (a folder) or ``"sagemaker"`` (a model package group).
        path: local: the registry folder (default ``sft-registry``; the group is a folder inside it).
        boto_session: SageMaker: the ``boto3.Session`` to use. region: SageMaker: the region.

    Example:
        >>> reg = Registry("reviews-models", path=tmp)
        >>> reg.table().empty
        True
    """

    def __init__(self, group: str, *, backend: str = "local", path: str | Path | None = None, boto_session: Any = None,
                 region: str | None = None) -> None:
        self.group = check_group(group)
        if backend not in ("local", "sagemaker"):
            raise ConfigError(f"backend={backend!r}: a registry is 'local' (a folder) or 'sagemaker' (a model package "
                              "group). Fix: Registry(group, backend='sagemaker').")
        if backend == "sagemaker" and path is not None:
            raise ConfigError("path= is the local registry's folder; a SageMaker registry lives in the account. "
                              "Fix: drop path, or use backend='local'.")
        self.backend = backend
        self._store: Any
        if backend == "local":
            self._store = LocalStore(Path(path or DEFAULT_PATH) / self.group, self.group)
        else:
            from sagefinetune.backends.sagemaker.registry import SageMakerStore

            self._store = SageMakerStore(self.group, boto_session=boto_session, region=region)

    @property
    def folder(self) -> Path | None:
        """The group's folder (local registries)."""
        return getattr(self._store, "folder", None)

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first, with its metrics and status."""
        return self._store.versions()

    def table(self) -> pd.DataFrame:
        """:meth:`versions` as a DataFrame: version, status, created, one column per metric, model."""
        import pandas as pd

        rows = [{"version": v.version, "status": v.status, "created": v.created, **dict(v.metrics), "model": v.model}
                for v in self.versions()]
        return pd.DataFrame(rows, columns=None if rows else ["version", "status", "created", "model"])

    def get(self, version: int | str = "latest") -> ModelVersion:
        """One version: a number, ``"latest"``, or ``"approved"`` (the latest approved one)."""
        found = self.versions()
        if version in ("latest", "approved"):
            pool = [v for v in found if version == "latest" or v.status == "Approved"]
            if not pool:
                what = "no versions" if not found else "no approved version"
                raise ConfigError(f"model group {self.group!r} has {what} ({self._where()}). "
                                  + ("Fix: run the pipeline first." if not found else "Fix: registry.approve(<version>)."))
            return pool[-1]
        if isinstance(version, bool) or not isinstance(version, int):
            raise ConfigError(f"version must be a number, 'latest' or 'approved'; got {version!r}. Fix: get(1).")
        for v in found:
            if v.version == version:
                return v
        raise ConfigError(f"model group {self.group!r} has no version {version}; it has "
                          f"{[v.version for v in found] or 'none'} ({self._where()}). Fix: one of those.")

    def approve(self, version: int | str = "latest", note: str | None = None) -> ModelVersion:
        """Mark a version ``Approved`` (what a deploy needs); returns it as it is now."""
        return self._store.set_status(self.get(version), "Approved", note)

    def reject(self, version: int | str = "latest", note: str | None = None) -> ModelVersion:
        """Mark a version ``Rejected``."""
        return self._store.set_status(self.get(version), "Rejected", note)

    def register(self, model_dir: str | Path, *, metrics: Mapping[str, float], labels: tuple[str, ...] | list[str],
                 status: str = "PendingManualApproval", inference_image: str | None = None,
                 source: Mapping[str, str] | None = None) -> ModelVersion:
        """Add a model folder as the next version (local registries; on SageMaker the pipeline's Register step does)."""
        if self.backend != "local":
            raise ConfigError("on SageMaker a version is registered by the pipeline's Register step (CreateModelPackage). "
                              "Fix: pipe.upsert(role=...); pipe.start().")
        return self._store.register(Path(model_dir), dict(metrics), tuple(labels), check_status(status),
                                    inference_image, dict(source or {}))

    def deploy(self, version: int | str = "approved", instance: str = "local", *, require_approval: bool = True,
               **options: Any) -> Endpoint:
        """Serve a version: an :class:`~sagefinetune.endpoint.Endpoint` (delete it when done, or use ``with``).

        Args:
            version: a number, ``"approved"`` (the latest approved version: the default) or ``"latest"``.
            instance: ``"local"`` (a server on this machine) or a SageMaker instance type (``"ml.m5.xlarge"``);
                ``serverless=True`` in ``options`` for a SageMaker serverless endpoint.
            require_approval: refuse a version that is not ``Approved`` (the default).
            **options: passed to :func:`sagefinetune.serving.deploy_local` (local) or
                :meth:`sagefinetune.endpoint.Endpoint.from_model` (SageMaker: ``role``, ``name``, ``memory_mb``, ...).

        Example:
            >>> with Registry("reviews-models").deploy(2) as ep:  # doctest: +SKIP
            ...     ep.predict(["an awful, boring film"])
        """
        chosen = self.get(version)
        if require_approval and chosen.status != "Approved":
            raise ConfigError(f"version {chosen.version} of {self.group!r} is {chosen.status}, not Approved. "
                              f"Fix: registry.approve({chosen.version}) first, or deploy(..., require_approval=False).")
        return self._store.deploy(chosen, instance, options)

    def _where(self) -> str:
        return f"folder {self.folder}" if self.folder is not None else f"SageMaker, {self._store.region}"

    def __repr__(self) -> str:
        return f"<Registry {self.group} {self.backend} ({self._where()})>"


class LocalStore:
    """A registry folder: ``v<N>/version.json`` and ``v<N>/model/``; a version number is taken by creating its folder."""

    def __init__(self, folder: Path, group: str) -> None:
        self.folder = folder
        self.group = group

    def versions(self) -> list[ModelVersion]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.glob(f"v*/{VERSION_FILE}"):
            record = json.loads(path.read_text())
            found.append(ModelVersion(
                group=self.group, version=int(record["version"]), status=record["status"],
                metrics=MappingProxyType(record.get("metrics", {})), labels=tuple(record.get("labels", ())),
                model=str(path.parent / "model"), inference_image=record.get("inference_image"),
                created=record.get("created", ""), source=MappingProxyType(record.get("source", {}))))
        return sorted(found, key=lambda v: v.version)

    def register(self, model_dir: Path, metrics: dict[str, float], labels: tuple[str, ...], status: str,
                 inference_image: str | None, source: dict[str, str]) -> ModelVersion:
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"{model_dir} is not a model folder (no config.json). Fix: pass run.model_dir.")
        self.folder.mkdir(parents=True, exist_ok=True)
        number = max([int(p.name[1:]) for p in self.folder.glob("v*") if p.name[1:].isdigit()], default=0) + 1
        while True:  # the folder is the lock: two processes registering at once get different numbers
            try:
                (self.folder / f"v{number}").mkdir()
                break
            except FileExistsError:
                number += 1
        home = self.folder / f"v{number}"
        shutil.copytree(model_dir, home / "model")  # a copy: a registered version never changes with its run folder
        record = {"group": self.group, "version": number, "status": status, "metrics": metrics, "labels": list(labels),
                  "inference_image": inference_image, "created": _now(), "source": source,
                  "history": [{"status": status, "at": _now(), "note": "registered"}]}
        _write_json(home / VERSION_FILE, record)
        return self.get(number)

    def get(self, number: int) -> ModelVersion:
        return next(v for v in self.versions() if v.version == number)

    def set_status(self, version: ModelVersion, status: str, note: str | None) -> ModelVersion:
        path = self.folder / f"v{version.version}" / VERSION_FILE
        record = json.loads(path.read_text())
        record["status"] = status
        record.setdefault("history", []).append({"status": status, "at": _now(), "note": note})
        _write_json(path, record)
        print(f"[sagefinetune] {self.group} v{version.version}: {status}")
        return self.get(version.version)

    def deploy(self, version: ModelVersion, instance: str, options: dict[str, Any]) -> Endpoint:
        if instance == "local" and not options.get("serverless"):
            from sagefinetune.serving import deploy_local  # type: ignore[attr-defined,unused-ignore]

            return deploy_local(version.model, **options)  # type: ignore[no-any-return,unused-ignore]
        raise ConfigError(f"version {version.version} of {self.group!r} is in a local registry; its model folder deploys "
                          "here (instance='local'). Fix: deploy(..., instance='local'), or Endpoint.from_model("
                          f"{version.model!r}, instance={instance!r}) to upload and serve it on SageMaker.")


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
