"""Content-addressed S3 uploads: the data channels, model folders and archives go under a key named by a hash of
their content, so the same content is uploaded once and a key that is there is complete and the same."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.core.console import say, upload_bar
from sagefinetune.entrypoint import contract
from sagefinetune.errors import AWSError


def exists(s3: Any, bucket: str, key: str, size: int | None = None) -> bool:
    """Whether the object is there (with ``size`` bytes, when given)."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound"):
            return False
        raise AWSError(f"HeadObject s3://{bucket}/{key} failed: {exc}", operation="HeadObject", code=code) from exc
    return size is None or int(head.get("ContentLength", -1)) == size


def upload(s3: Any, path: Path, bucket: str, key: str, label: str, progress: bool) -> None:
    """One file to ``s3://bucket/key``, with a progress bar."""
    size = path.stat().st_size
    with aws_errors(f"PutObject s3://{bucket}/{key}"), upload_bar(label, size, progress) as callback:
        s3.upload_file(str(path), bucket, key, Callback=callback)


def channel_uris(prepared: Any, bucket: str, prefix: str) -> dict[str, str]:
    """Where the prepared splits live in S3: ``s3://<bucket>/<prefix>/data/<content hash>/<split>/``."""
    return {split: f"s3://{bucket}/{prefix}/data/{prepared.fingerprint}/{split}/" for split in prepared.sizes()}


def upload_channels(s3: Any, prepared: Any, bucket: str, prefix: str, *, progress: bool = True) -> dict[str, str]:
    """Write the splits and upload them under :func:`channel_uris`; content already there is skipped."""
    root = f"{prefix}/data/{prepared.fingerprint}"
    with tempfile.TemporaryDirectory() as tmp:
        for split, folder in prepared.write(tmp).items():
            path = Path(folder) / contract.DATA_FILE
            key = f"{root}/{split}/{contract.DATA_FILE}"
            size = path.stat().st_size
            if exists(s3, bucket, key, size):
                say(f"s3://{bucket}/{key} is already uploaded ({size:,} bytes); skipping", progress)
            else:
                upload(s3, path, bucket, key, f"upload {split}", progress)
    return channel_uris(prepared, bucket, prefix)


def model_folder_uri(folder: str, bucket: str, prefix: str) -> str:
    """Where a local model folder lives in S3: ``s3://<bucket>/<prefix>/models/<content hash>/``."""
    return f"s3://{bucket}/{prefix}/models/{content_hash(folder)[:16]}/"


def content_hash(folder: str | Path) -> str:
    """The sha256 of a folder's :func:`visible_files`: each one's path in the folder and the hash of its content."""
    digest = hashlib.sha256()
    for path in visible_files(Path(folder)):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(file_hash(path).encode())
    return digest.hexdigest()


def upload_model_folder(s3: Any, folder: str, bucket: str, prefix: str, *, progress: bool = True) -> str:
    """Upload a local model folder under :func:`model_folder_uri` (files already there are skipped)."""
    uri = model_folder_uri(folder, bucket, prefix)
    root = uri[len(f"s3://{bucket}/") :].rstrip("/")
    for path in visible_files(Path(folder)):
        key = f"{root}/{path.relative_to(folder).as_posix()}"
        if not exists(s3, bucket, key, path.stat().st_size):
            upload(s3, path, bucket, key, f"upload model {path.name}", progress)
    return uri


def visible_files(folder: Path) -> list[Path]:
    """Every file under the folder, sorted, but hidden ones (a part of the path starting with a dot) and Python's
    bytecode caches (``__pycache__``, ``.pyc``: importing a model folder's ``code/inference.py`` writes them, and they
    would change the folder's content hash and travel in its upload)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not _skipped(p.relative_to(folder)))


def _skipped(relative: Path) -> bool:
    return relative.suffix == ".pyc" or any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def file_hash(path: Path) -> str:
    """The sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
