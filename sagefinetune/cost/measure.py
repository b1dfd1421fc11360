"""The estimate refined at fit, once the rows are read: exact row counts, real token lengths, this machine's speed."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sagefinetune.cost.workload import CHARS_PER_TOKEN, measured_shape

if TYPE_CHECKING:
    from sagefinetune.data.prepared import Prepared
    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["refine_at_fit", "token_lengths"]

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
        from transformers import AutoTokenizer

        from sagefinetune.facts.models import local_path

        folder = local_path(job.model_id)
        if folder is None:
            raise FileNotFoundError(job.model_id)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        ids = tokenizer(texts, pairs, truncation=False)["input_ids"]
        return [float(len(i)) for i in ids], f"{len(ids)} rows tokenized at fit"
    except Exception:  # no tokenizer offline, or an s3:// model: characters are the next best measure
        lengths = [(len(t) + len(p)) / CHARS_PER_TOKEN + 2 for t, p in zip(texts, pairs or [""] * len(texts))]
        return lengths, f"{len(lengths)} rows at fit (tokens: characters / 4; the tokenizer is not on this machine)"


def refine_at_fit(job: Job, plan: TrainingPlan, prepared: Prepared) -> TrainingPlan:
    """The plan with its estimate recomputed from the rows as read (and, locally, this machine's cached speed)."""
    from sagefinetune.cost.estimate import Estimate, estimate_plan

    scale_lr = any(n.startswith("scale_lr:") for n in plan.notes)
    try:
        if plan.backend == "local":
            from sagefinetune.cost.local_speed import cached_speed

            speed: Any = cached_speed(job, plan.world_size)
            shape = measured_shape(prepared, None, "rows as read at fit")
            estimate = estimate_plan(job, plan, shape=shape, local_speed=speed, scale_lr=scale_lr)
        else:
            lengths, how = token_lengths(job, prepared)
            estimate = estimate_plan(job, plan, shape=measured_shape(prepared, lengths, how), scale_lr=scale_lr)
    except Exception as exc:  # an estimate must never stop a fit
        estimate = Estimate.unavailable(f"the estimate failed at fit: {type(exc).__name__}: {exc}")
    return replace(plan, estimate=estimate)
