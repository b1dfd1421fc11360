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

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.local_registry import DEFAULT_PATH, STATUSES, LocalStore, check_group, check_status
from sagefinetune.backends.records import ModelVersion
from sagefinetune.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.endpoint import Endpoint

__all__ = ["Registry", "ModelVersion", "STATUSES"]

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
            **options: passed to :func:`sagefinetune.endpoint.deploy_local` (local) or
                :meth:`sagefinetune.endpoint.Endpoint.from_model` (SageMaker: ``role``, ``name``, ``memory_mb``, ...).

        Example:
            >>> with Registry("reviews-models").deploy(2) as ep:  # doctest: +SKIP
            ...     ep.predict(["an awful, boring film"])
        """
        chosen = self.get(version)
        if require_approval and chosen.status != "Approved":
            raise ConfigError(f"version {chosen.version} of {self.group!r} is {chosen.status}, not Approved. "
                              f"Fix: registry.approve({chosen.version}) first, or deploy(..., require_approval=False).")
        if self.backend == "local":
            return _deploy_local(chosen, instance, options)
        return _deploy_sagemaker(chosen, instance, options, self._store)

    def _where(self) -> str:
        return f"folder {self.folder}" if self.folder is not None else f"SageMaker, {self._store.region}"

    def __repr__(self) -> str:
        return f"<Registry {self.group} {self.backend} ({self._where()})>"


def _deploy_local(version: ModelVersion, instance: str, options: dict[str, Any]) -> Endpoint:
    if instance == "local" and not options.get("serverless"):
        from sagefinetune.endpoint import deploy_local

        return deploy_local(version.model, **options)
    raise ConfigError(f"version {version.version} of {version.group!r} is in a local registry; its model folder deploys "
                      "here (instance='local'). Fix: deploy(..., instance='local'), or Endpoint.from_model("
                      f"{version.model!r}, instance={instance!r}) to upload and serve it on SageMaker.")


def _deploy_sagemaker(version: ModelVersion, instance: str, options: dict[str, Any], store: Any) -> Endpoint:
    from sagefinetune.endpoint import Endpoint

    if instance == "local":
        raise ConfigError(f"version {version.version} of {version.group!r} lives in SageMaker ({version.model}). "
                          "Fix: deploy(..., instance='ml.m5.xlarge') or serverless=True; to serve it here, download "
                          "and unpack the archive, then sagefinetune.endpoint.deploy_local(<folder>).")
    options.setdefault("image", version.inference_image)
    options.setdefault("region", store.region)
    if store.boto_session is not None:
        options.setdefault("boto_session", store.boto_session)
    serverless = bool(options.pop("serverless", False))
    return Endpoint.from_model(version.model, instance=None if serverless else instance, serverless=serverless,
                               **options)
