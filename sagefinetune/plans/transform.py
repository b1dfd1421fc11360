"""What a SageMaker batch transform job will be: its model (a :class:`~sagefinetune.plans.deploy.DeploySpec` named
like the job), its input and output, checked.

Pure: no I/O, no SDK import. The backend (:mod:`sagefinetune.backends.sagemaker.batch`) uploads rows, creates the
job and waits.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sagefinetune.core.checks import boolean
from sagefinetune.errors import ConfigError
from sagefinetune.plans.deploy import OPTIONS, DeploySpec, ModelRef, check_options, plan_deploy, whole_number

ENDPOINT_ONLY = ("serverless", "memory_mb", "max_concurrency", "ttl", "scheduler_role", "autoscale", "target_invocations")
TRANSFORM_OPTIONS = tuple(o for o in OPTIONS if o not in ENDPOINT_ONLY) + (
    "output_path", "split", "download", "path", "max_concurrent_transforms")
DEFAULT_CONCURRENT_TRANSFORMS = 4  # requests in flight per instance; x the default 6 MB payload stays under 100 MB


@dataclass(frozen=True)
class TransformSpec:
    """A batch transform job before anything is created: its model (named like the job), input and output.

    ``source`` is an ``s3://`` URI of JSON Lines files (one request per line), or ``"rows"``: the rows of a Dataset
    (its ``split``) or a list of texts, written as ``{"inputs": text}`` lines and uploaded once per content.
    """

    model: DeploySpec
    source: str
    split: str | None
    output_path: str | None
    max_concurrent: int
    download: bool
    path: str | None


def plan_transform(model: ModelRef, data: Any, *, region: str, now: datetime | None = None,
                   **options: Any) -> TransformSpec:
    """Check every option of a batch transform (pure)."""
    check_options(options, TRANSFORM_OPTIONS, "batch_predict")
    spec = plan_deploy(model, region=region, kind_default="batch", now=now,
                       **{k: v for k, v in options.items() if k in OPTIONS})
    source, split = transform_source(data, options.get("split"))
    output = options.get("output_path")
    if output is not None and (not isinstance(output, str) or not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", output)):
        raise ConfigError(f"output_path={output!r} is not an s3:// URI. Fix: output_path='s3://my-bucket/predictions/'.")
    path = options.get("path")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path={path!r} must be a local folder. Fix: path='predictions/'.")
    concurrent = whole_number("max_concurrent_transforms", options.get("max_concurrent_transforms",
                              DEFAULT_CONCURRENT_TRANSFORMS), 1, 16, "max_concurrent_transforms=4")
    download = boolean("download", options.get("download", False), "download=True")
    return TransformSpec(spec, source, split, output.rstrip("/") + "/" if output else None, concurrent, download,
                         None if path is None else os.fspath(path))


def transform_source(data: Any, split: Any) -> tuple[str, str | None]:
    """("s3://...", split) for data already in S3, ("rows", split) for rows read here."""
    from sagefinetune.data.dataset import Dataset

    if split is not None and split not in ("train", "test", "validation"):
        raise ConfigError(f"split={split!r} is not a split name. Fix: split='test' (or 'train', 'validation').")
    if isinstance(data, str) and data.startswith("s3://") and len(data) > 5:
        return data, None
    if isinstance(data, Dataset) and data.is_remote:
        uris = dict(data.source.kwargs)
        chosen = split or ("test" if "test" in uris else next(iter(uris)))
        if chosen not in uris:
            raise ConfigError(f"the Dataset has no {chosen} split in S3 (it has {sorted(uris)}). "
                              f"Fix: split='{next(iter(uris))}'.")
        return str(uris[chosen]), chosen
    if isinstance(data, Dataset):
        return "rows", split or "test"
    texts = isinstance(data, (list, tuple)) and data and all(
        isinstance(t, str) or (isinstance(t, tuple) and len(t) == 2 and all(isinstance(x, str) for x in t)) for t in data)
    if texts:
        return "rows", None
    raise ConfigError(f"batch_predict takes a Dataset, a list of texts (or of (text, text_pair) tuples), or an s3:// "
                      f"URI of JSON Lines files; got {str(data)[:100]!r}. Fix: one of those.")
