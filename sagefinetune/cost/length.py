"""``max_length="auto"`` (the default): the length chosen from the train rows' token lengths, and what it cuts.

The rule: the 95th percentile of the token lengths of a train sample (special tokens included), rounded up to a
multiple of 8 (the entry point pads batches to multiples of 8) and capped at the model's maximum. So 95% of the rows
keep every token, and the batches of the other 5% cost no more than the model allows.

Where the lengths come from:

- before launch (:func:`plan_length`, no tokenizer, nothing heavy imported): a bundled example's measured lengths
  (``cost/example_tokens.json``); a DataFrame's first rows, or a local file's first rows (characters / 4). A plan
  with nothing to read (a Hub dataset, ``from_disk``, ``from_s3``) assumes :data:`ASSUMED` tokens and says so.
- at fit (:func:`sagefinetune.cost.measure.refine_at_fit`): up to 2,000 rows of the prepared train split, tokenized
  with the model's own tokenizer when it is on this machine. That length is the one the entry point receives.
  ``from_s3`` data is never read by this machine, so its jobs train with the assumed length.

A length set by the user is kept as set; the plan still shows the share of the rows it cuts when the lengths are
known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagefinetune.cost.workload import CHARS_PER_TOKEN, example_tokens
from sagefinetune.entrypoint.contract import parse_hyperparameters, render_hyperparameter
from sagefinetune.facts.defaults import max_tokens

if TYPE_CHECKING:
    from sagefinetune.job import Job

__all__ = ["AUTO", "ASSUMED", "MaxLength", "auto_length", "percentile", "plan_length", "plan_lengths",
           "typed_hyperparameters"]

AUTO = "auto"
PERCENTILE = 95
PAD_MULTIPLE = 8
ASSUMED = 256  # a plan with no rows to read: the default before "auto"
MIN_LENGTH = 8  # the entry point's lowest max_length


@dataclass(frozen=True)
class MaxLength:
    """The max_length a plan trains with, and what it means for the rows.

    Attributes:
        value: the tokens an input keeps.
        auto: chosen by the rule (``max_length="auto"``), not set by the user.
        truncation: ``"head"`` or ``"head+tail"``: which tokens a longer row keeps.
        percentile: the 95th percentile of the sampled token lengths (None: no lengths).
        truncated: the share of the sampled train rows longer than ``value`` (None: no lengths).
        model_max: the model's maximum (auto only).
        basis: where the lengths came from, or why there are none.
        at_fit: whether fit() reads the rows (and chooses again from them); False for ``from_s3`` data.
    """

    value: int
    auto: bool
    truncation: str = "head"
    percentile: float | None = None
    truncated: float | None = None
    model_max: int | None = None
    basis: str = ""
    at_fit: bool = True  # fit() reads the rows and chooses again (not for from_s3 data)

    def line(self) -> str:
        """What the plan prints, e.g. ``512 (auto: 95th percentile 757 tokens, ...); 14% of train rows are longer``."""
        lost = "their middle" if self.truncation == "head+tail" else "their end"
        if self.auto and self.percentile is None:
            then = ("fit() chooses from its rows" if self.at_fit else
                    f"so the job trains with {self.value}; .hyperparameters(max_length=<tokens>) chooses another")
            return f"{self.value} assumed (auto: {self.basis}; {then})"
        how = "set"
        if self.auto:
            capped = self.model_max is not None and self.percentile is not None and self.percentile > self.model_max
            how = (f"auto: {PERCENTILE}th percentile {self.percentile:.0f} tokens"
                   + (f", capped at the model's maximum {self.model_max}" if capped else
                      f", rounded up to a multiple of {PAD_MULTIPLE}"))
        cut = ""
        if self.truncated is not None:
            cut = (f"; {_share(self.truncated)} of train rows are longer and lose {lost} ({self.truncation})"
                   if self.truncated else "; no train row is longer")
        return f"{self.value} ({how}){cut} [{self.basis}]"

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "auto": self.auto, "truncation": self.truncation, "percentile": self.percentile,
                "truncated": self.truncated, "model_max": self.model_max, "basis": self.basis, "at_fit": self.at_fit}


def percentile(lengths: Sequence[float], q: float = PERCENTILE) -> float:
    """The ``q``-th percentile, interpolated linearly between the sorted values (numpy's default).

    >>> percentile([10, 20, 30, 40, 50], 95)
    48.0
    """
    ordered = sorted(lengths)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def auto_length(lengths: Sequence[float], model_max: int, truncation: str = "head", basis: str = "") -> MaxLength:
    """The rule on a sample of token lengths.

    >>> auto_length([40, 60, 120, 300, 700] * 20, 512).value  # 95th percentile 700 > 512
    512
    >>> auto_length([31, 35, 38, 44, 45], 512).value  # 95th percentile 44.8 -> 48
    48
    """
    p95 = percentile(lengths)
    value = min(model_max, max(MIN_LENGTH, math.ceil(p95 / PAD_MULTIPLE) * PAD_MULTIPLE))
    return MaxLength(value, True, truncation, p95, truncated_share(lengths, value), model_max, basis)


def truncated_share(lengths: Sequence[float], max_length: int) -> float:
    """The share of ``lengths`` above ``max_length``."""
    return sum(1 for n in lengths if n > max_length) / len(lengths) if lengths else 0.0


def plan_lengths(job: Job) -> tuple[tuple[float, ...] | None, str]:
    """Token lengths of train rows that can be had before launch, cheaply, and where they came from (or why not)."""
    ds = job.dataset
    kind = ds.source.kind
    if kind == "example":
        name = ds.source.args[0]
        tokenizer = example_tokens()["tokenizer"].rsplit("/", 1)[-1]
        return tuple(example_tokens()[name]["quantiles"]), f"bundled example {name!r}, {tokenizer}'s tokens"
    if ds.frames is not None:
        frame = ds.frames["train"].head(2000)
        columns = [c for c in (ds.text, ds.text_pair) if c and c in frame.columns]
        if columns and len(frame):
            chars = [sum(n) for n in zip(*(frame[c].astype(str).str.len().tolist() for c in columns))]
            return _tokens(chars), f"the DataFrame's first {len(chars):,} rows, characters / 4"
    if kind in ("csv", "json", "parquet"):
        from sagefinetune.data.peek import first_rows_lengths

        peeked = first_rows_lengths(ds)
        if peeked is not None:
            return _tokens(peeked[0]), f"{peeked[1]}, characters / 4"
    where = ds.source.describe()
    if ds.is_remote:
        return None, f"{where} is read by SageMaker in place, never by this machine"
    return None, f"{where} is read by fit(), not before"


def plan_length(job: Job) -> MaxLength | None:
    """The max_length of the Job's plan: the rule on :func:`plan_lengths` for ``"auto"``, else the value set (with
    the share it cuts, when lengths are known; None when they are not)."""
    hp = job.hyperparameters_
    requested, truncation = hp.get("max_length", AUTO), str(hp.get("truncation", "head"))
    lengths, basis = plan_lengths(job)
    if requested != AUTO:
        if lengths is None:
            return None
        return MaxLength(int(requested), False, truncation, None, truncated_share(lengths, int(requested)), None, basis)
    model_max, _ = max_tokens(job.model_id)
    if lengths is None:
        return MaxLength(min(ASSUMED, model_max), True, truncation, model_max=model_max, basis=basis,
                         at_fit=not job.dataset.is_remote)
    return auto_length(lengths, model_max, truncation, basis)


def typed_hyperparameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """A Job's hyperparameters typed as the entry point reads them (defaults filled in), ``max_length="auto"`` kept."""
    auto = values.get("max_length") == AUTO
    hp = parse_hyperparameters({k: render_hyperparameter(v) for k, v in values.items() if not (auto and k == "max_length")})
    return {**hp, "max_length": AUTO} if auto else hp


def _tokens(chars: Sequence[int]) -> tuple[float, ...]:
    return tuple(n / CHARS_PER_TOKEN + 2 for n in chars)  # + [CLS] and [SEP]


def _share(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 else f"{value:.1%}" if value >= 0.001 else "<0.1%"
