"""The local Hub's storage (tests/hub_server.py serves it): content-addressed blobs and one JSON record per repository.

Blobs live under ``objects/<sha256>``; a repository's record (``repos/<kind>s/<id>.json``) holds its owner,
visibility, branches and commits, and each commit's file table (size, git oid, whether it is an LFS file). Also here:
the Hub's errors as responses, and the model-card metadata check behind ``/api/validate-yaml`` and commits.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from starlette.responses import JSONResponse

GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
PIPELINE_TAGS = {"text-classification", "token-classification", "fill-mask", "feature-extraction", "zero-shot-classification"}


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code

    def response(self) -> JSONResponse:
        headers = {"X-Error-Message": self.message.splitlines()[0]}
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


def validate_card(content: str) -> list[str]:
    """The metadata errors the Hub reports for a README.md (empty: valid)."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    if not match:
        return []
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        return [f"YAML: {exc}"]
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    bases = meta.get("base_model")
    for base in [bases] if isinstance(bases, str) else (bases or []):
        if not isinstance(base, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+|[\w.-]+", base):
            errors.append(f'"base_model" must be a Hub model id; got {base!r}')
    if meta.get("pipeline_tag") is not None and meta["pipeline_tag"] not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" {meta["pipeline_tag"]!r} is not a known task')
    for key in ("tags", "datasets", "metrics"):
        if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
            errors.append(f'"{key}" must be a list of strings')
    errors += _model_index_errors(meta.get("model-index"))
    return errors


def _model_index_errors(index: Any) -> list[str]:
    if index is None:
        return []
    if not isinstance(index, list):
        return ['"model-index" must be a list']
    errors = []
    for entry in index:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append('"model-index[].name" is required')
            continue
        for result in entry.get("results") or []:
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if not isinstance(task.get("type"), str):
                errors.append('"model-index[].results[].task.type" is required')
            if not isinstance(dataset.get("type"), str) or not isinstance(dataset.get("name"), str):
                errors.append('"model-index[].results[].dataset" needs "type" and "name"')
            for metric in result.get("metrics") or []:
                if not isinstance(metric.get("type"), str) or not isinstance(metric.get("value"), (int, float, str)):
                    errors.append(f'"model-index[].results[].metrics[]" needs "type" and a "value"; got {metric!r}')
    return errors


@dataclass
class HubStore:
    """Repositories in the folder ``root``; ``lock`` serialises the writes of concurrent requests."""

    root: Path
    lock: threading.RLock = field(default_factory=threading.RLock)

    # ---- storage --------------------------------------------------------------------------------------
    def _record_path(self, repo_id: str, kind: str = "model") -> Path:
        return self.root / "repos" / f"{kind}s" / f"{repo_id}.json"

    def record(self, repo_id: str, kind: str = "model") -> dict[str, Any] | None:
        path = self._record_path(repo_id, kind)
        return json.loads(path.read_text()) if path.exists() else None

    def _save(self, repo_id: str, record: dict[str, Any], kind: str = "model") -> None:
        path = self._record_path(repo_id, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))

    def _put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / "objects" / sha
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return sha

    def blob(self, sha: str) -> bytes:
        return (self.root / "objects" / sha).read_bytes()

    def files(self, repo_id: str, revision: str = "main", kind: str = "model") -> dict[str, bytes]:
        """Every file of a repository at a revision, for assertions."""
        record = self.record(repo_id, kind)
        assert record is not None, f"no repo {repo_id}"
        commit = record["commits"][record["branches"].get(revision, revision)]
        return {path: self.blob(f["sha256"]) for path, f in commit["files"].items()}

    def commits(self, repo_id: str, revision: str = "main", kind: str = "model") -> list[dict[str, Any]]:
        """The commits on a branch, newest first."""
        record = self.record(repo_id, kind) or {}
        out, oid = [], record["branches"][revision]
        while oid:
            out.append({"oid": oid, **record["commits"][oid]})
            oid = record["commits"][oid]["parent"]
        return out

    def add_commit(self, repo_id: str, files: dict[str, bytes], *, kind: str = "dataset", private: bool = False,
                   oid: str | None = None, message: str = "add files", branch: str = "main") -> str:
        """Commit ``files`` (on top of the branch's files) straight into storage, creating the repository (owned by
        its namespace) if needed; returns the commit's oid (``oid`` when given: a revision a test pins)."""
        with self.lock:
            record = self.record(repo_id, kind) or {"owner": repo_id.split("/")[0], "private": private,
                                                    "created": time.time(), "branches": {}, "commits": {}}
            parent = record["branches"].get(branch)
            table = dict(record["commits"][parent]["files"]) if parent else {
                ".gitattributes": self._file_entry(GITATTRIBUTES, lfs=False)}
            for path, data in files.items():
                table[path] = self._file_entry(data, lfs=b"\0" in data[:8000] or path.endswith(".parquet"))
            oid = oid or self._new_oid(repo_id, message)
            record["commits"][oid] = {"parent": parent, "message": message, "files": table, "date": time.time()}
            record["branches"][branch] = oid
            self._save(repo_id, record, kind)
        return oid

    @staticmethod
    def _commit_of(record: dict[str, Any], revision: str) -> str:
        oid = record["branches"].get(revision, revision if revision in record["commits"] else None)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return oid

    def _file_entry(self, data: bytes, lfs: bool) -> dict[str, Any]:
        return {"sha256": self._put_blob(data), "size": len(data), "lfs": lfs, "git_oid": git_oid(data)}

    @staticmethod
    def _new_oid(repo_id: str, message: str) -> str:
        return hashlib.sha1(f"{repo_id}{message}{time.time_ns()}".encode()).hexdigest()

    @staticmethod
    def _entries(files: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every file and folder of a commit as the tree API answers them, by path."""
        out: dict[str, dict[str, Any]] = {}
        for path, f in files.items():
            out[path] = {"type": "file", "path": path, "size": f["size"], "oid": f["git_oid"],
                         **({"lfs": {"oid": f["sha256"], "size": f["size"], "pointerSize": 134}} if f["lfs"] else {})}
            folder = posixpath.dirname(path)
            while folder:
                out[folder] = {"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()}
                folder = posixpath.dirname(folder)
        return out
