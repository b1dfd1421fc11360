"""A local model folder as the ``model.tar.gz`` SageMaker serves, uploaded once per content.

The archive's key is the hash of the folder's files (names and contents), so deploying the same folder again uploads
nothing; the archive itself is reproducible (no timestamps, owners or gzip time). A folder without
``code/inference.py`` gets sagefinetune's handler (``entrypoint/inference.py``, and the modules it imports beside
it) added when the package has one.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sagefinetune.backends.sagemaker.s3_content import exists, file_hash, upload, visible_files
from sagefinetune.core.console import say
from sagefinetune.entrypoint.outputs import HANDLER_MODULES

HANDLER = Path(__file__).resolve().parents[2] / "entrypoint" / "inference.py"
ARCHIVE = "model.tar.gz"


def entries(folder: Path, *, add_handler: bool) -> list[tuple[str, Path]]:
    """(name in the archive, file) for every file of the folder (hidden ones left out), plus the handler if asked."""
    found = [(p.relative_to(folder).as_posix(), p) for p in visible_files(folder)]
    if add_handler and HANDLER.is_file():
        found.append(("code/inference.py", HANDLER))
        found += [(f"code/{name}", HANDLER.with_name(name)) for name in HANDLER_MODULES]
    return found


def digest(items: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256()
    for name, path in items:
        h.update(name.encode())
        h.update(file_hash(path).encode())
    return h.hexdigest()[:16]


def write_archive(items: list[tuple[str, Path]], target: Path) -> Path:
    """A reproducible model.tar.gz of the items."""
    with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name, path in items:
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return target


def upload_folder(s3: Any, folder: Path, bucket: str, prefix: str, *, add_handler: bool, progress: bool = True) -> str:
    """Pack the folder and upload it to ``s3://<bucket>/<prefix>/model-archives/<content hash>/model.tar.gz``
    (skipped when that key is already there); returns the URI."""
    items = entries(folder, add_handler=add_handler)
    key = f"{prefix}/model-archives/{digest(items)}/{ARCHIVE}"
    uri = f"s3://{bucket}/{key}"
    if exists(s3, bucket, key):
        say(f"{uri} is already uploaded (same files); skipping", progress)
        return uri
    with tempfile.TemporaryDirectory(prefix="sagefinetune-model-") as tmp:
        archive = write_archive(items, Path(tmp) / ARCHIVE)
        upload(s3, archive, bucket, key, f"upload {folder.name}/{ARCHIVE}", progress)
    return uri

