"""Where a model comes from, and the checks on it that need its config: before any upload, job or training.

- :func:`model_source` (pure): ``"s3"``, ``"folder"`` (a local folder: trained here, or uploaded as the SageMaker
  model channel) or ``"hub"``.
- :func:`preflight` (reads the config, no weights): the model can be found, the config overrides name real fields,
  and none of them changes the shape of a pretrained weight (which would re-initialise it at random).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagefinetune.errors import ConfigError, did_you_mean

PATH_PREFIXES = ("/", "./", "../", "~", ".\\")


def model_source(model_id: str) -> str:
    """``"s3"``, ``"folder"`` or ``"hub"`` for a model name as given to ``Job.model``."""
    if model_id.startswith("s3://"):
        return "s3"
    if model_id.startswith(PATH_PREFIXES) or os.path.isdir(model_id):
        return "folder"
    return "hub"


WEIGHTS = ("model.safetensors", "model-*.safetensors", "pytorch_model.bin", "pytorch_model-*.bin")


def check_name(name: Any) -> str:
    """Builder-time checks of ``Job.model(name)``: a path must be a model folder; a Hub id must look like one."""
    from sagefinetune.entrypoint.contract import DEFAULT_MODEL

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"model(...) needs a Hub id or a folder; got {name!r}. Fix: .model('{DEFAULT_MODEL}').")
    source = model_source(name)
    if source == "folder":
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            what = "does not exist" if not folder.exists() else "holds no config.json"
            raise ConfigError(f"model folder {name!r} {what}. Fix: the folder a model was saved to "
                              "(save_pretrained / a run's model_dir), or a Hub id such as 'distilbert-base-uncased'.")
        if not any(any(folder.glob(pattern)) for pattern in WEIGHTS):
            raise ConfigError(f"model folder {name!r} holds a config but no weights (none of {', '.join(WEIGHTS)}). "
                              "Fix: save the model with save_pretrained into that folder, or give the folder that has them.")
        return str(folder.resolve())
    if source == "hub" and (name != name.strip() or name.count("/") > 1 or any(c.isspace() for c in name)):
        raise ConfigError(f"{name!r} is neither a Hub model id ('org/name') nor an existing folder. "
                          "Fix: check the id, or give the folder's path.")
    return name


def local_path(model_id: str) -> str | None:
    """Where this machine can read the model's files without a download, if it can (folder, package, Hub cache)."""
    from sagefinetune.entrypoint.training import resolve_model

    resolved = resolve_model(model_id, None)
    if os.path.isdir(resolved):
        return resolved
    if model_id.startswith("s3://"):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # an id the cache cannot even name
        return None
    return str(Path(cached).parent) if isinstance(cached, str) else None


def preflight(model_id: str, overrides: Mapping[str, Any], *, required: bool) -> str | None:
    """Check the model and its config overrides before anything runs; returns the config's folder or None.

    Args:
        required: True for a local run (the model must be readable here); False for SageMaker, where a Hub model
            this machine has never downloaded is checked inside the job instead.
    """
    path = local_path(model_id)
    if path is None:
        path = _online_config(model_id) if required and not _offline() else None
    if path is None:
        if required:
            raise ConfigError(
                f"the model {model_id!r} cannot be found on this machine, and HF_HUB_OFFLINE="
                f"{os.environ.get('HF_HUB_OFFLINE', '')!r} forbids downloading it. Fix: check the id, download it "
                "once with network (huggingface-cli download <id>), or give a local folder: .model('./my-model')."
            )
        return None
    check_overrides(path, overrides)
    return path


def check_overrides(path: str, overrides: Mapping[str, Any]) -> None:
    """Overrides must be fields of the config, and must not change the shape of any pretrained encoder weight."""
    if not overrides:
        return
    from transformers import AutoConfig

    base = AutoConfig.from_pretrained(path)
    fields = list(base.to_dict())
    for key in overrides:
        if not hasattr(base, key):
            raise ConfigError(f"model(..., {key}=...) is not a field of {type(base).__name__}"
                              f"{did_you_mean(key, fields)} Fix: use a field of the model's config.json.")
    changed = _changed_shapes(base, AutoConfig.from_pretrained(path, **dict(overrides)))
    if changed:
        name, before, after = changed[0]
        raise ConfigError(f"model(..., {', '.join(f'{k}={v!r}' for k, v in overrides.items())}) changes the shape of "
                          f"{len(changed)} pretrained weights (e.g. {name}: {before} -> {after}); they would be "
                          "re-initialised at random. Fix: drop the overrides that change sizes (such as hidden_size); "
                          "num_hidden_layers and dropout rates are safe.")


def _changed_shapes(base: Any, changed: Any) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """Encoder weights whose shapes differ between two configs: both models are built on the meta device (no memory)."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        before = {k: tuple(v.shape) for k, v in AutoModel.from_config(base).state_dict().items()}
        after = {k: tuple(v.shape) for k, v in AutoModel.from_config(changed).state_dict().items()}
    return [(k, before[k], after[k]) for k in before if k in after and before[k] != after[k]]


def _online_config(model_id: str) -> str | None:
    try:
        from huggingface_hub import hf_hub_download

        return str(Path(hf_hub_download(model_id, "config.json")).parent)
    except Exception as exc:  # not found, private, no network: say which
        raise ConfigError(f"the model {model_id!r} could not be read from the Hugging Face Hub "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Fix: check the id and your "
                          "network, log in for a private model (hf auth login), or give a local folder.") from exc


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
