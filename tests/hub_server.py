"""A small Hugging Face Hub on 127.0.0.1: the write and read API that huggingface_hub's real client uses.

Starlette routes served by uvicorn in a thread. Repositories live in a temporary folder (tests/hub_store.py): blobs
(``objects/<sha256>``) and one JSON record per repository (visibility, branches, commits, each commit's file table).

What it implements, as the Hub answers it:

- ``GET /api/whoami-v2``; ``POST /api/repos/create`` (409 with the url when it exists); ``POST /api/validate-yaml``
  (the model card's metadata: YAML, ``model-index`` shape, ``base_model`` ids, ``pipeline_tag``).
- ``POST /api/models/{id}/preupload/{rev}`` (binary or large files go to LFS, the rest inline), the git-LFS batch API
  (``/{id}.git/info/lfs/objects/batch``, a PUT upload and a verify), ``POST /api/models/{id}/commit/{rev}``
  (NDJSON: header, file (base64), lfsFile, deletedFile, deletedFolder; a README.md with bad metadata is refused),
  ``POST /api/models/{id}/branch/{branch}``.
- ``GET /api/models/{id}[/revision/{rev}]``, ``GET /api/models/{id}/tree/{rev}[/{path}]``,
  ``GET/HEAD /{id}/resolve/{rev}/{path}`` with ETag, X-Repo-Commit, Content-Length, and X-Linked-Etag /
  X-Linked-Size for LFS files; errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound).
- Auth: ``Authorization: Bearer <token>`` from :attr:`HubServer.tokens`. A wrong token gets 401 "Invalid credentials
  in Authorization header"; no token on a write gets 401; a read token or another namespace gets 403. Private repos
  are invisible (401/404 RepoNotFound) to anyone but their owner.

Dataset repositories are read the same way under ``/api/datasets/...`` and ``/datasets/{id}/resolve/...``, plus the
calls 🤗 datasets makes: ``GET /api/datasets/{id}/tree/{rev}[/{path}]?recursive=`` (folders listed as the Hub lists
them) and ``POST /api/datasets/{id}/paths-info/{rev}``. Tests put their content there with :meth:`HubServer.add_commit`
(a commit with a chosen oid, so a test can serve a pinned revision); builders of cards, Parquet, CSV and JSON files
and of the fake Amazon reviews copy are in ``tests/hub_datasets.py``.

Every request is recorded in :attr:`HubServer.requests` (method, path, whether it carried a valid token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from hub_store import GITATTRIBUTES, HubError, HubStore, git_oid, validate_card
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LFS_SIZE = 10 * 1024 * 1024
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass
class HubServer(HubStore):
    """The server's handlers over its storage (tests/hub_store.py). :meth:`start` serves it; :attr:`url` is the
    endpoint."""

    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (user, "read" | "write")
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    url: str = ""

    # ---- auth -----------------------------------------------------------------------------------------
    def _user(self, request: Request) -> tuple[str, str] | None:
        auth = request.headers.get("authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _writer(self, request: Request, namespace: str) -> str:
        user = self._user(request)
        if user is None:
            raise HubError(401, "You must be authenticated to write to the Hub")
        name, role = user
        if role != "write":
            raise HubError(403, f"You don't have the rights to write to {namespace}: your token is read-only")
        if namespace != name:
            raise HubError(403, f"You don't have the rights to create or write to {namespace}/*")
        return name

    def _readable(self, request: Request, repo_id: str) -> dict[str, Any]:
        record = self.record(repo_id, self._kind(request))
        user = self._user(request)
        if record is None or (record["private"] and (user is None or user[0] != record["owner"])):
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return record

    # ---- handlers -------------------------------------------------------------------------------------
    def whoami(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            raise HubError(401, "Invalid username or password.")
        return JSONResponse({"type": "user", "name": user[0], "orgs": [],
                             "auth": {"type": "access_token", "accessToken": {"role": user[1]}}})

    async def create_repo(self, request: Request) -> Response:
        body = await request.json()
        name, namespace = body.get("name", ""), body.get("organization")
        user = self._writer(request, namespace or (self._user(request) or ("", ""))[0])
        namespace = namespace or user
        if not REPO_NAME.fullmatch(name) or body.get("type", "model") != "model":
            raise HubError(400, f"Invalid repo name or type: {name!r}")
        repo_id, url = f"{namespace}/{name}", f"{self.url}/{namespace}/{name}"
        with self.lock:
            if self.record(repo_id) is not None:
                return JSONResponse({"error": "You already created this model repo", "url": url}, status_code=409)
            files = {".gitattributes": self._file_entry(GITATTRIBUTES, lfs=False)}
            oid = self._new_oid(repo_id, "initial commit")
            self._save(repo_id, {"owner": namespace, "private": body.get("visibility") == "private",
                                 "created": time.time(), "branches": {"main": oid},
                                 "commits": {oid: {"parent": None, "message": "initial commit", "files": files,
                                                   "date": time.time()}}})
        return JSONResponse({"url": url, "name": repo_id, "id": repo_id})

    async def validate_yaml(self, request: Request) -> Response:
        body = await request.json()
        errors = validate_card(body.get("content", ""))
        if errors:
            return JSONResponse({"errors": [{"message": e} for e in errors], "warnings": []}, status_code=400,
                                headers={"X-Error-Message": "Invalid metadata in README.md."})
        return JSONResponse({"errors": [], "warnings": []})

    async def preupload(self, request: Request) -> Response:
        repo_id = self._repo_id(request)
        self._writer(request, request.path_params["ns"])
        self._commit_of(self._readable(request, repo_id), request.path_params["rev"])
        files = []
        for f in (await request.json())["files"]:
            sample = base64.b64decode(f["sample"])
            binary = b"\0" in sample or f["path"].endswith((".safetensors", ".bin"))
            files.append({"path": f["path"], "uploadMode": "lfs" if binary or f["size"] > LFS_SIZE else "regular",
                          "shouldIgnore": False})
        return JSONResponse({"files": files, "commitOid": None})

    async def lfs_batch(self, request: Request) -> Response:
        self._writer(request, request.path_params["ns"])
        self._readable(request, self._repo_id(request))
        objects = []
        for obj in (await request.json())["objects"]:
            done = (self.root / "objects" / obj["oid"]).exists()
            actions = None if done else {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"},
                                         "verify": {"href": f"{self.url}/lfs-verify"}}
            objects.append({"oid": obj["oid"], "size": obj["size"], **({"actions": actions} if actions else {})})
        return JSONResponse({"transfer": "basic", "objects": objects})

    async def lfs_upload(self, request: Request) -> Response:
        data = await request.body()
        if hashlib.sha256(data).hexdigest() != request.path_params["oid"]:
            raise HubError(400, "uploaded content does not match its sha256")
        self._put_blob(data)
        return Response(status_code=200)

    async def lfs_verify(self, request: Request) -> Response:
        body = await request.json()
        path = self.root / "objects" / body["oid"]
        if not path.exists() or path.stat().st_size != body["size"]:
            raise HubError(404, "LFS object not found")
        return JSONResponse({"success": True})

    async def commit(self, request: Request) -> Response:
        repo_id = self._repo_id(request)
        self._writer(request, request.path_params["ns"])
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        with self.lock:
            record = self._readable(request, repo_id)
            branch = request.path_params["rev"]
            parent = self._commit_of(record, branch)
            if branch not in record["branches"]:
                raise HubError(400, "commits go to a branch")
            header = next(x["value"] for x in lines if x["key"] == "header")
            if header.get("parentCommit") and header["parentCommit"] != parent:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(record["commits"][parent]["files"])
            for item in lines:
                self._apply(files, item["key"], item["value"])
            readme = files.get("README.md")
            errors = validate_card(self.blob(readme["sha256"]).decode()) if readme else []
            if errors:
                raise HubError(400, "Invalid metadata in README.md.\n- " + "\n- ".join(errors))
            oid = self._new_oid(repo_id, header["summary"])
            record["commits"][oid] = {"parent": parent, "message": header["summary"], "files": files,
                                      "date": time.time()}
            record["branches"][branch] = oid
            self._save(repo_id, record)
        return JSONResponse({"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                             "success": True, "pullRequestUrl": None})

    def _apply(self, files: dict[str, Any], key: str, value: dict[str, Any]) -> None:
        if key == "file":
            files[value["path"]] = self._file_entry(base64.b64decode(value["content"]), lfs=False)
        elif key == "lfsFile":
            path = self.root / "objects" / value["oid"]
            if not path.exists():
                raise HubError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
            files[value["path"]] = {"sha256": value["oid"], "size": path.stat().st_size, "lfs": True,
                                    "git_oid": git_oid(f"oid sha256:{value['oid']}".encode())}
        elif key == "deletedFile":
            files.pop(value["path"], None)
        elif key == "deletedFolder":
            for path in [p for p in files if p.startswith(value["path"].rstrip("/") + "/")]:
                del files[path]

    async def create_branch(self, request: Request) -> Response:
        repo_id = self._repo_id(request)
        self._writer(request, request.path_params["ns"])
        body = await request.json() if await request.body() else {}
        with self.lock:
            record = self._readable(request, repo_id)
            branch = request.path_params["branch"]
            if branch in record["branches"]:
                raise HubError(409, f"Reference refs/heads/{branch} already exists")
            record["branches"][branch] = self._commit_of(record, body.get("startingPoint") or "main")
            self._save(repo_id, record)
        return JSONResponse({})

    def repo_info(self, request: Request) -> Response:
        repo_id = self._repo_id(request)
        record = self._readable(request, repo_id)
        oid = self._commit_of(record, request.path_params.get("rev", "main"))
        files = record["commits"][oid]["files"]
        key = "modelId" if self._kind(request) == "model" else "name"
        return JSONResponse({"id": repo_id, key: repo_id, "author": record["owner"], "sha": oid,
                             "private": record["private"], "gated": False, "disabled": False, "tags": [],
                             "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                             "siblings": [{"rfilename": p} for p in sorted(files)]})

    def tree(self, request: Request) -> Response:
        """A folder's entries (files, and folders as ``directory``); with ``recursive=true``, everything under it."""
        repo_id = self._repo_id(request)
        record = self._readable(request, repo_id)
        oid = self._commit_of(record, request.path_params["rev"])
        entries = self._entries(record["commits"][oid]["files"])
        prefix = request.path_params.get("path", "").strip("/")
        if prefix and entries.get(prefix, {}).get("type") != "directory":
            raise HubError(404, f"{prefix} does not exist", "EntryNotFound")
        recursive = request.query_params.get("recursive", "false").lower() == "true"
        under = [p for p in entries if (not prefix or p.startswith(prefix + "/")) and p != prefix]
        chosen = under if recursive else [p for p in under if posixpath.dirname(p) == prefix]
        return JSONResponse([entries[p] for p in sorted(chosen)])

    async def paths_info(self, request: Request) -> Response:
        """The entries of the paths asked for (a form with ``paths`` repeated); paths that do not exist are left out."""
        repo_id = self._repo_id(request)
        record = self._readable(request, repo_id)
        oid = self._commit_of(record, request.path_params["rev"])
        entries = self._entries(record["commits"][oid]["files"])
        paths = parse_qs((await request.body()).decode()).get("paths", [])
        return JSONResponse([entries[p.strip("/")] for p in paths if p.strip("/") in entries])

    def resolve(self, request: Request) -> Response:
        repo_id = self._repo_id(request)
        record = self._readable(request, repo_id)
        oid = self._commit_of(record, request.path_params["rev"])
        entry = record["commits"][oid]["files"].get(request.path_params["path"])
        if entry is None:
            return JSONResponse({"error": "Entry not found"}, status_code=404,
                                headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": oid})
        headers = {"X-Repo-Commit": oid, "ETag": f'"{entry["sha256"] if entry["lfs"] else entry["git_oid"]}"',
                   "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(entry["size"])})
        if request.method == "HEAD":
            return Response(status_code=200, headers={**headers, "Content-Length": str(entry["size"])})
        return Response(self.blob(entry["sha256"]), headers=headers, media_type="application/octet-stream")

    @staticmethod
    def _repo_id(request: Request) -> str:
        return f"{request.path_params['ns']}/{request.path_params['name']}"

    @staticmethod
    def _kind(request: Request) -> str:
        return "dataset" if request.url.path.startswith(("/api/datasets/", "/datasets/")) else "model"

    # ---- serving --------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        def wrap(handler: Any) -> Any:
            async def endpoint(request: Request) -> Response:
                token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                self.requests.append((request.method, request.url.path, token in self.tokens))
                try:
                    result = handler(request)
                    return await result if hasattr(result, "__await__") else result
                except HubError as exc:
                    return exc.response()
            return endpoint

        repo, data = "/api/models/{ns}/{name}", "/api/datasets/{ns}/{name}"
        routes = [
            ("/api/whoami-v2", self.whoami, ["GET"]),
            ("/api/repos/create", self.create_repo, ["POST"]),
            ("/api/validate-yaml", self.validate_yaml, ["POST"]),
            (repo + "/preupload/{rev}", self.preupload, ["POST"]),
            (repo + "/commit/{rev}", self.commit, ["POST"]),
            (repo + "/branch/{branch}", self.create_branch, ["POST"]),
            (repo + "/tree/{rev}", self.tree, ["GET"]),
            (repo + "/tree/{rev}/{path:path}", self.tree, ["GET"]),
            (repo + "/revision/{rev}", self.repo_info, ["GET"]),
            (repo, self.repo_info, ["GET"]),
            (data + "/tree/{rev}", self.tree, ["GET"]),
            (data + "/tree/{rev}/{path:path}", self.tree, ["GET"]),
            (data + "/paths-info/{rev}", self.paths_info, ["POST"]),
            (data + "/revision/{rev}", self.repo_info, ["GET"]),
            (data, self.repo_info, ["GET"]),
            ("/datasets/{ns}/{name}/resolve/{rev}/{path:path}", self.resolve, ["GET", "HEAD"]),
            ("/{ns}/{name}.git/info/lfs/objects/batch", self.lfs_batch, ["POST"]),
            ("/lfs-upload/{oid}", self.lfs_upload, ["PUT"]),
            ("/lfs-verify", self.lfs_verify, ["POST"]),
            ("/{ns}/{name}/resolve/{rev}/{path:path}", self.resolve, ["GET", "HEAD"]),
        ]
        return Starlette(routes=[Route(path, wrap(h), methods=m) for path, h, m in routes])

    def start(self) -> uvicorn.Server:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        threading.Thread(target=server.run, daemon=True, name="hub-server").start()
        deadline = time.time() + 20
        while not server.started:
            if time.time() > deadline:
                raise RuntimeError("the local Hub server did not start in 20 s")
            time.sleep(0.02)
        return server


def start(tokens: dict[str, tuple[str, str]]) -> tuple[HubServer, uvicorn.Server]:
    """Start a Hub on a free port, storing repositories in a new temporary folder."""
    hub = HubServer(Path(tempfile.mkdtemp(prefix="sft-hub-")), tokens=dict(tokens))
    return hub, hub.start()
