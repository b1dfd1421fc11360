"""Hugging Face container versions: one table for training and inference, checked before launch.

Each row pairs a training image with the inference image that serves what it trains. The newest row that runs on the
instance's GPU is chosen: the CUDA 13 images do not run on V100 (ml.p3), so those get the transformers 4.56 row.
URIs are resolved offline from the sagemaker SDK's own image table (the file it ships), so the plan needs no network
and no SDK import; the SageMaker backend checks the same URI through ``sagemaker.core.image_uris`` before launch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sagefinetune.errors import ImageError
from sagefinetune.facts.instances import Instance


@dataclass(frozen=True)
class ImagePair:
    transformers: str
    pytorch: str
    py: str
    cuda: str
    min_compute_capability: float
    inference_transformers: str
    inference_pytorch: str
    inference_py: str

    @property
    def label(self) -> str:
        return f"transformers {self.transformers} / pytorch {self.pytorch} / {self.py} / {self.cuda}"


#: Newest first. Training versions exist for GPU only; inference versions for CPU and GPU.
IMAGE_PAIRS: tuple[ImagePair, ...] = (
    ImagePair("5.3.0", "2.9.0", "py312", "cu130", 7.5, "5.5.3", "2.6.0", "py312"),
    ImagePair("4.56.2", "2.8.0", "py312", "cu129", 7.0, "4.51.3", "2.6.0", "py312"),
)


def choose(instance: Instance, transformers_version: str | None = None) -> ImagePair:
    """The newest pair that runs on the instance (or the pinned transformers version, checked)."""
    if not instance.gpus:
        raise ImageError(
            f"{instance.name} has no GPU, and the Hugging Face training containers are built for GPUs only. "
            "Fix: a GPU instance such as 'ml.g5.xlarge' (A10G) or 'ml.g4dn.xlarge' (T4), or instance='local'."
        )
    fits = [p for p in IMAGE_PAIRS if instance.compute_capability >= p.min_compute_capability]
    if transformers_version is not None:
        pinned = [p for p in IMAGE_PAIRS if p.transformers == transformers_version]
        if not pinned:
            raise ImageError(f"no Hugging Face training image for transformers {transformers_version!r}; this table "
                             f"has {[p.transformers for p in IMAGE_PAIRS]}. Fix: pick one of those (full version).")
        if pinned[0] not in fits:
            raise ImageError(
                f"the transformers {transformers_version} image ({pinned[0].cuda}) does not run on {instance.name} "
                f"({instance.gpu}); images that do: {[p.transformers for p in fits]}. Fix: pick one of those."
            )
        return pinned[0]
    if not fits:
        raise ImageError(f"no Hugging Face training image runs on {instance.name} ({instance.gpu}).")
    return fits[0]


@lru_cache(maxsize=1)
def _sdk_table() -> dict[str, Any]:
    import importlib.util

    spec = importlib.util.find_spec("sagemaker")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        from sagefinetune.errors import MissingDependencyError

        raise MissingDependencyError("'sagemaker' is needed to plan SageMaker jobs. Fix: pip install 'sagemaker>=3.27,<4'.")
    path = Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config" / "huggingface.json"
    return json.loads(path.read_text())


def uri(pair: ImagePair, region: str, scope: str = "training", processor: str = "gpu") -> str:
    """The ECR URI of the image, from the SDK's table, for a region."""
    table = _sdk_table()[scope]
    tf, pt, py = ((pair.transformers, pair.pytorch, pair.py) if scope == "training"
                  else (pair.inference_transformers, pair.inference_pytorch, pair.inference_py))
    versions = table["versions"]
    if tf not in versions:
        raise ImageError(f"the sagemaker SDK knows no {scope} image for transformers {tf}; it has {sorted(versions)}.")
    entry = versions[tf].get(f"pytorch{pt}")
    if entry is None or py not in entry["py_versions"]:
        raise ImageError(f"no {scope} image for transformers {tf} with pytorch {pt} / {py}.")
    if region not in entry["registries"]:
        raise ImageError(f"no Hugging Face {scope} image in region {region!r}; regions: {sorted(entry['registries'])}.")
    account = entry["registries"][region]
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    container = entry["container_version"][processor]
    return (f"{account}.dkr.ecr.{region}.{domain}/{entry['repository']}:"
            f"{pt}-transformers{tf}-{processor}-{py}-{container}")
