"""Where a model comes from, and the checks on it that need its config: before any upload, job or training.

- :func:`model_source` (pure): ``"s3"``, ``"folder"`` (a local folder: trained here, or uploaded as the SageMaker
  model channel) or ``"hub"``.
- :func:`preflight` (reads the config, no weights): the model can be found, the config overrides name real fields,
  and none of them discards pretrained weights (a changed shape or a new layer would start at random; other attention
  heads would read the pretrained weights differently) unless ``reinitialize=True`` says so, and then a warning says
  which weights start afresh.
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


def preflight(model_id: str, overrides: Mapping[str, Any], *, required: bool,
              reinitialize: bool = False) -> str | None:
    """Check the model and its config overrides before anything runs; returns the config's folder or None.

    Args:
        required: True for a local run (the model must be readable here); False for SageMaker, where a Hub model
            this machine has never downloaded is checked inside the job instead.
        reinitialize: overrides may discard pretrained weights (``Job.model(..., reinitialize=True)``).
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
    check_overrides(path, overrides, reinitialize=reinitialize)
    return path


def check_overrides(path: str, overrides: Mapping[str, Any], *, reinitialize: bool = False) -> None:
    """Overrides must be fields of the config (did you mean ...), and must not discard pretrained encoder weights
    unless ``reinitialize``; then a warning names what starts afresh."""
    if not overrides:
        return
    from transformers import AutoConfig

    from sagefinetune.entrypoint.training import reinterpreted, weight_changes

    base = AutoConfig.from_pretrained(path)
    fields = list(base.to_dict())
    for key in overrides:
        if not hasattr(base, key):
            raise ConfigError(f"model(..., {key}=...) is not a field of {type(base).__name__}"
                              f"{did_you_mean(key, fields)} Fix: use a field of the model's config.json.")
    given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    try:
        changed = weight_changes(base, AutoConfig.from_pretrained(path, **dict(overrides)))
    except (ValueError, TypeError) as exc:  # e.g. a hidden size that the heads do not divide
        raise ConfigError(f"model(..., {given}) makes a model that transformers cannot build: "
                          f"{str(exc).splitlines()[0][:300]} Fix: values that fit together.") from None
    heads = reinterpreted(base, dict(overrides))
    if changed or heads:
        _discarded(given, changed, heads, reinitialize)


def _discarded(given: str, changed: list[Any], heads: list[str], reinitialize: bool) -> None:
    """Refuse overrides that discard pretrained weights, or (``reinitialize``) warn which weights start afresh."""
    import warnings

    parts = []
    if changed:
        name, before, after = changed[0]
        new = sum(1 for c in changed if c[1] is None)
        parts.append(f"{len(changed)} weights change shape or are new, so they start at random (e.g. {name}: "
                     f"{before or 'not in the model'} -> {after}" + (f"; {new} are in new layers" if new else "") + ")")
    if heads:
        parts.append(f"{'; '.join(heads)} reads the pretrained attention weights as heads of another size")
    what = "; and ".join(parts)
    if not reinitialize:
        raise ConfigError(f"model(..., {given}) would discard what the pretrained model learned: {what}. Fix: drop "
                          "the overrides that change sizes or heads (hidden_size, intermediate_size, "
                          "num_attention_heads, vocab_size, more layers; fewer num_hidden_layers and dropout rates are "
                          f"safe), or say it is meant: .model(..., {given}, reinitialize=True).")
    warnings.warn(f"model(..., {given}, reinitialize=True): the pretrained weights of those layers are discarded: "
                  f"{what}. They are trained from your data alone.", UserWarning, stacklevel=4)


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
