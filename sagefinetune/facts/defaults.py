"""Hyperparameter defaults chosen for the model at hand: the learning rate and warmup follow the encoder's width.

Small encoders such as MiniLM (hidden size 384) learn too slowly at BERT-base's 5e-5: on 2,000 Rotten Tomatoes rows
and 1 epoch they stay near 0.73 accuracy, and reach about 0.80 at a rate three to four times larger (measured:
``benchmarks/defaults.py``, numbers in ``benchmarks/results/defaults.json`` and :doc:`/benchmarks`). Wider models
take the rates their papers and the field use: 5e-5 at 768 (BERT-base, DistilBERT, RoBERTa-base), 2e-5 above
(the large models, which diverge at higher rates).

The width comes from, in order: a table of common models; the ``config.json`` of a local folder or of the
Hugging Face cache (a file read, no network); words in the id (``large``, ``base``, ``mini``, ``small``, ``tiny``).
A model none of them knows gets 5e-5, and the plan says so. A value the user sets always wins.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagefinetune.job import Job

__all__ = ["Chosen", "choose", "learning_rate_for", "hidden_size", "max_tokens", "KNOWN_WIDTHS", "WARMUP"]

#: Where a plan's note sends the user for the measurement: the docs, which an installed package can reach.
MEASURED = 'measured: see the docs page "Benchmarks", section "Defaults chosen for the model"'
WARMUP = 0.1  # share of the steps spent warming up, for every width (measured on MiniLM: benchmarks/defaults.py)

#: hidden size of common encoders (lower-case Hub ids; the org prefix is optional for the old un-prefixed ids)
KNOWN_WIDTHS: dict[str, int] = {
    "sentence-transformers/all-minilm-l6-v2": 384, "sentence-transformers/all-minilm-l12-v2": 384,
    "sentence-transformers/paraphrase-minilm-l3-v2": 384, "sentence-transformers/paraphrase-multilingual-minilm-l12-v2": 384,
    "microsoft/minilm-l12-h384-uncased": 384, "nreimers/minilm-l6-h384-uncased": 384,
    "huawei-noah/tinybert_general_4l_312d": 312, "google/electra-small-discriminator": 256,
    "prajjwal1/bert-tiny": 128, "prajjwal1/bert-mini": 256, "prajjwal1/bert-small": 512, "prajjwal1/bert-medium": 512,
    "distilbert-base-uncased": 768, "distilbert-base-cased": 768, "distilbert-base-multilingual-cased": 768,
    "bert-base-uncased": 768, "bert-base-cased": 768, "bert-base-multilingual-cased": 768, "roberta-base": 768,
    "distilroberta-base": 768, "xlm-roberta-base": 768, "albert-base-v2": 768, "microsoft/deberta-v3-small": 768,
    "microsoft/deberta-v3-base": 768, "microsoft/mpnet-base": 768, "sentence-transformers/all-mpnet-base-v2": 768,
    "google/electra-base-discriminator": 768, "answerdotai/modernbert-base": 768,
    "bert-large-uncased": 1024, "bert-large-cased": 1024, "roberta-large": 1024, "xlm-roberta-large": 1024,
    "microsoft/deberta-v3-large": 1024, "google/electra-large-discriminator": 1024, "answerdotai/modernbert-large": 1024,
}
#: orgs the Hub moved the old un-prefixed ids into (``distilbert/distilbert-base-uncased``)
MOVED_ORGS = ("distilbert/", "google-bert/", "facebookai/", "albert/", "openai-community/")
NAME_WIDTHS = ((r"large", 1024), (r"base", 768), (r"mini|small|tiny|little", 384))


@dataclass(frozen=True)
class Chosen:
    """Values chosen for hyperparameters the user left unset, and why (the plan shows it)."""

    values: dict[str, Any]
    why: str


def learning_rate_for(width: int | None) -> float:
    """The peak learning rate for an encoder of hidden size ``width`` (None: unknown, BERT-base's rate)."""
    if width is None:
        return 5e-5
    if width <= 384:
        return 1.5e-4
    if width <= 512:
        return 1e-4
    if width <= 768:
        return 5e-5
    return 2e-5


def hidden_size(model_id: str) -> tuple[int | None, str]:
    """(width, where it came from) for a model id or folder; (None, why) when unknown."""
    key = model_id.strip().rstrip("/").lower()
    for org in MOVED_ORGS:
        key = key.removeprefix(org)
    if key in KNOWN_WIDTHS:
        return KNOWN_WIDTHS[key], "sagefinetune's table of common models"
    config = _config_file(model_id)
    if config is not None:
        fields = json.loads(config.read_text(encoding="utf-8"))
        width = next((fields[k] for k in ("hidden_size", "dim", "d_model") if isinstance(fields.get(k), int)), None)
        if width is not None:
            return width, f"its config ({config})"
    name = model_id.rsplit("/", 1)[-1].lower()
    for pattern, width in NAME_WIDTHS:
        if re.search(pattern, name):
            return width, f"its name ({pattern!r} in {name!r})"
    return None, "its width is not known here"


def max_tokens(model_id: str) -> tuple[int, str]:
    """(the most tokens the model takes, where that came from): its tokenizer's ``model_max_length``, else the
    config's position embeddings (less RoBERTa's two offset positions), else 512, the BERT family's, assumed."""
    config = _config_file(model_id)
    if config is not None:
        tokenizer = config.with_name("tokenizer_config.json")
        if tokenizer.is_file():
            value = json.loads(tokenizer.read_text(encoding="utf-8")).get("model_max_length")
            if isinstance(value, (int, float)) and 8 <= value <= 1_000_000:  # huge values mean "not set"
                return int(value), f"its tokenizer ({tokenizer})"
        fields = json.loads(config.read_text(encoding="utf-8"))
        positions = fields.get("max_position_embeddings")
        if isinstance(positions, int) and positions >= 8:
            offset = 2 if fields.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer") else 0
            return positions - offset, f"its config ({config})"
    return 512, "assumed: the BERT family's maximum (the model's files are not on this machine)"


def choose(job: Job) -> Chosen:
    """Learning rate and warmup for the Job's model, for those the user did not set."""
    unset = [k for k in ("learning_rate", "warmup") if k not in job.hyperparameters_]
    if not unset:
        return Chosen({}, "")
    width, source = hidden_size(job.model_id)
    values = {"learning_rate": learning_rate_for(width), "warmup": WARMUP}
    values = {k: v for k, v in values.items() if k in unset}
    shown = ", ".join(f"{k}={v:g}" for k, v in values.items())
    override = ".hyperparameters(" + ", ".join(f"{k}=..." for k in values) + ") overrides it"
    if "learning_rate" not in values:
        why = f"{shown}: the default warmup ({MEASURED}); {override}"
    elif width is None:
        why = (f"{shown}: the width of {job.model_id} is not known here (not in the table, no config on this "
               "machine), so the rate is BERT-base's; smaller models want 1e-4 and up, large ones 2e-5. " + override)
    else:
        reason = ("small encoders learn faster at a larger rate than BERT-base's 5e-5" if width <= 512 else
                  "the rate the field uses at this width")
        why = (f"{shown}: chosen for {job.model_id} (hidden size {width}, from {source}): {reason} "
               f"({MEASURED}). {override}")
    return Chosen(values, why)


def _config_file(model_id: str) -> Path | None:
    """The model's config.json on this machine: a folder, a model shipped as a package, or the Hub cache."""
    from sagefinetune.entrypoint.training import resolve_model

    local = resolve_model(model_id, None)
    if os.path.isfile(os.path.join(local, "config.json")):
        return Path(local) / "config.json"
    if model_id.startswith(("s3://", "/", ".", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # an id the cache cannot even name
        return None
    return Path(cached) if isinstance(cached, str) else None
