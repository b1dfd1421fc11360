"""The plan refined at fit, once the rows are read: ``max_length="auto"`` chosen from the rows' token lengths, and the
estimate from exact row counts, real token lengths and this machine's speed."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.cost.length import auto_length
from sagefinetune.cost.workload import CHARS_PER_TOKEN, measured_shape
from sagefinetune.entrypoint.contract import render_hyperparameter

if TYPE_CHECKING:
    from sagefinetune.data.prepared import Prepared
    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["refine_at_fit", "choose_length", "token_lengths"]

SAMPLE_ROWS = 2000


def token_lengths(job: Job, prepared: Prepared) -> tuple[list[float], str]:
    """Token lengths of up to 2,000 train rows with the model's own tokenizer when it is on this machine (no download
    for an estimate); characters / 4 otherwise."""
    train = prepared.tables["train"]
    picked = sorted(random.Random(0).sample(range(train.num_rows), min(SAMPLE_ROWS, train.num_rows)))
    rows = train.take(picked)
    texts = [str(t or "") for t in rows["text"].to_pylist()]
    pairs = [str(t or "") for t in rows["text_pair"].to_pylist()] if prepared.text_pair else None
    try:
        from sagefinetune.facts.models import local_path

        folder = local_path(job.model_id)
        if folder is None:
            raise FileNotFoundError(job.model_id)
        lengths = _tokenized_lengths(Path(folder), texts, pairs)
        return lengths, f"{len(lengths):,} train rows tokenized at fit"
    except Exception:  # no tokenizer offline, or an s3:// model: characters are the next best measure
        lengths = [(len(t) + len(p)) / CHARS_PER_TOKEN + 2 for t, p in zip(texts, pairs or [""] * len(texts))]
        return lengths, f"{len(lengths):,} train rows at fit, characters / 4 (the tokenizer is not on this machine)"


def _tokenized_lengths(folder: Path, texts: list[str], pairs: list[str] | None) -> list[float]:
    """Token lengths, special tokens included, untruncated: the folder's tokenizer.json through the tokenizers library
    (light: no torch), else transformers' AutoTokenizer."""
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_truncation()  # a tokenizer.json may carry the length it was saved with
        tokenizer.no_padding()
        inputs: list[Any] = list(zip(texts, pairs)) if pairs is not None else texts
        return [float(len(e.ids)) for e in tokenizer.encode_batch(inputs)]
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return [float(len(i)) for i in auto(texts, pairs, truncation=False, verbose=False)["input_ids"]]


def choose_length(job: Job, plan: TrainingPlan, prepared: Prepared) -> tuple[TrainingPlan, list[float] | None, str]:
    """The plan with ``max_length="auto"`` chosen from the prepared train rows (their token lengths, with the lengths
    and where they came from); a plan whose max_length was set is returned as it is."""
    if plan.length is None or not plan.length.auto:
        return plan, None, ""
    from sagefinetune.facts.defaults import max_tokens

    lengths, how = token_lengths(job, prepared)
    length = auto_length(lengths, max_tokens(job.model_id)[0], plan.length.truncation, how)
    hyperparameters = {**plan.hyperparameters, "max_length": render_hyperparameter(length.value)}
    return replace(plan, hyperparameters=MappingProxyType(hyperparameters), length=length), lengths, how


def refine_at_fit(job: Job, plan: TrainingPlan, prepared: Prepared) -> TrainingPlan:
    """The plan with ``max_length="auto"`` chosen from the rows (see :func:`choose_length`; its hyperparameters are
    the ones to launch with), and its estimate recomputed from the rows as read (and, locally, this machine's cached
    speed)."""
    from sagefinetune.cost.estimate import Estimate, estimate_plan

    plan, lengths, how = choose_length(job, plan, prepared)
    scale_lr = any(n.startswith("scale_lr:") for n in plan.notes)
    try:
        if plan.backend == "local":
            from sagefinetune.cost.local_speed import cached_speed

            speed: Any = cached_speed(job, plan.world_size)
            shape = measured_shape(prepared, None, "rows as read at fit")
            estimate = estimate_plan(job, plan, shape=shape, local_speed=speed, scale_lr=scale_lr)
        else:
            if lengths is None:
                lengths, how = token_lengths(job, prepared)
            estimate = estimate_plan(job, plan, shape=measured_shape(prepared, lengths, how), scale_lr=scale_lr)
    except Exception as exc:  # an estimate must never stop a fit
        estimate = Estimate.unavailable(f"the estimate failed at fit: {type(exc).__name__}: {exc}")
    return replace(plan, estimate=estimate)
