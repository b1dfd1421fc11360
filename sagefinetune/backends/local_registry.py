"""The local model registry: a folder per group, ``v<N>/version.json`` and ``v<N>/model/`` per version."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sagefinetune.backends.records import ModelVersion
from sagefinetune.errors import ConfigError

__all__ = ["LocalStore", "STATUSES", "DEFAULT_PATH", "VERSION_FILE", "check_group", "check_status"]

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

def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
