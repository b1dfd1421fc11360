"""How many rows, of what token lengths, a Job will train and evaluate on: known before launch, or counted at fit.

Before launch (pure, no I/O) the rows are known when:

- ``plan(..., train_rows=N)`` says so (the way for ``from_s3`` data and Hub datasets without a sample);
- the Dataset is a bundled example (its sizes and token lengths ship in ``cost/example_tokens.json``);
- the Dataset is a withdrawn Hub name read from its pinned copy (``amazon_reviews_multi``: the copy's published
  split sizes; token lengths unknown, so every row counts as ``max_length``);
- ``.sample(train=N)`` caps the train split (at most N rows; the lengths stay unknown unless it is an example);
- the Dataset is a pandas DataFrame in memory (rows counted; tokens about characters / 4);
- the Dataset is local CSV, JSON or Parquet files: counted without parsing them (:func:`sagefinetune.data.peek.count_rows`:
  the Parquet metadata, a line count of CSV and JSON Lines), tokens about characters / 4 of the first rows.

Otherwise the rows are counted when ``fit()`` reads them, and the estimate is refined then. The rows trained on are
what is left of train after the rows carved from it: the default 10% test split, ``.split(test=..., validation=...)``
(fractions or counts), and the 10% validation split ``early_stopping`` (and multi-label thresholds) set aside.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from sagefinetune.cost.throughput import Workload, padded_tokens_per_row
from sagefinetune.data.hub_copies import HUB_COPIES
from sagefinetune.data.prepare import VALIDATION_FRACTION
from sagefinetune.entrypoint.contract import parse_hyperparameters

if TYPE_CHECKING:
    from sagefinetune.data.prepared import Prepared
    from sagefinetune.job import Job

__all__ = ["DataShape", "data_shape", "measured_shape", "workload", "CHARS_PER_TOKEN", "DEFAULT_TEST_SHARE"]

CHARS_PER_TOKEN = 4.0  # English sub-word tokenizers: about 4 characters a token
DEFAULT_TEST_SHARE = 0.1  # a source without a test split gets 10% of train carved out (Dataset.load)


@dataclass(frozen=True)
class DataShape:
    """Rows per split and a sample of token lengths (``None``: not known yet), and how they are known."""

    train_rows: int | None
    eval_rows: int = 0  # the split evaluated after each epoch (validation, else test)
    test_rows: int = 0  # the split of the final evaluation (test, else validation)
    validation_rows: int = 0
    lengths: tuple[float, ...] | None = None  # token lengths before truncation, special tokens included
    source: str = ""
    reason: str = ""  # why the rows are not known


@cache
def example_tokens() -> dict[str, Any]:
    text = resources.files("sagefinetune.cost").joinpath("example_tokens.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def _carve(rows: int, amount: float | int) -> int:
    """Rows a split of ``amount`` (a fraction or a count) takes from ``rows``, as :func:`~sagefinetune.data.splits.carve`."""
    return min(rows, round(amount * rows) if isinstance(amount, float) else int(amount))


def _watches_validation(job: Job) -> bool:
    """Whether prepare() sets a validation split aside from train when the data has none (early stopping watches it,
    multi-label rows choose their threshold on it)."""
    label_map = job.label_map
    return bool(job.hyperparameters_.get("early_stopping")) or (label_map is not None and label_map.is_multi_label)


def _known_rows(job: Job) -> tuple[int | None, int | None, int | None, tuple[float, ...] | None, str]:
    """(train, test, validation, token lengths, where from) as the source holds them; None: not known."""
    ds = job.dataset
    kind = ds.source.kind
    if kind == "example":
        info = example_tokens()[ds.source.args[0]]
        return info["train"], info["test"], None, tuple(info["quantiles"]), f"bundled example {ds.source.args[0]!r}"
    if kind == "hub" and ds.source.args[0] in HUB_COPIES and not ds.splits:
        rows = HUB_COPIES[ds.source.args[0]].split_rows(ds.source.args[1])
        return (rows["train"], rows["test"], rows.get("validation"), None,
                f"the published split sizes of {HUB_COPIES[ds.source.args[0]].repo}")
    from sagefinetune.data.peek import count_basis, count_rows, first_rows_lengths
    from sagefinetune.data.split_column import plan_split_rows

    by_column = plan_split_rows(ds)  # a split column: its splits, not train alone
    counts = by_column[0] if by_column else count_rows(ds) if kind in ("pandas", "csv", "json", "parquet") else None
    if not counts or "train" not in counts:
        return None, None, None, None, ""
    if ds.frames is not None:
        frame = ds.frames["train"]
        lengths = (tuple(len(str(t)) / CHARS_PER_TOKEN + 2 for t in frame[ds.text].head(2000))
                   if ds.text in frame.columns else None)
        source = "DataFrame in memory (tokens: characters / 4)"
    else:
        peeked = first_rows_lengths(ds)
        lengths = tuple(n / CHARS_PER_TOKEN + 2 for n in peeked[0]) if peeked else None
        source = f"counted before launch by {count_basis(kind)} (tokens: characters / 4)"
    return counts["train"], counts.get("test"), counts.get("validation"), lengths, source


def data_shape(job: Job, train_rows: int | None = None) -> DataShape:
    """What is known about the rows before launch: what is in memory or ships with the package, and the row counts
    of local files (their metadata or a line count; no parsing)."""
    ds = job.dataset
    sample = {k: v for k, v in ds.sample_spec if k != "seed"}
    train, test, validation, lengths, source = _known_rows(job)
    if train is not None:  # the splits as loading makes them: carved from train, then sampled
        spec = dict(ds.split_spec) or ({} if test is not None else {"test": DEFAULT_TEST_SHARE})
        carved_test = _carve(train, spec["test"]) if spec.get("test") else 0
        carved_validation = _carve(train - carved_test, spec["validation"]) if spec.get("validation") else 0
        train -= carved_test + carved_validation
        test, validation = (test or carved_test), (validation or carved_validation)
        test = min(test, sample.get("test", test))
        validation = min(validation, sample.get("validation", validation))
    if "train" in sample:
        train = min(train, sample["train"]) if train is not None else sample["train"]
        source = source or "sample(train=...)"
    if train is not None and not validation and _watches_validation(job):  # prepare() sets 10% of train aside
        validation = _carve(train, VALIDATION_FRACTION)
        train -= validation
    if train_rows is not None:
        train, source = train_rows, "train_rows given"
    if train is None:
        where = ds.source.describe()
        why = ("is not read before launch" if ds.is_remote else
               "has no sample size; its rows are counted when fit() reads them" if ds.source.kind == "hub" else
               "is counted when fit() reads it")
        return DataShape(None, reason=f"{where} {why}; plan(..., train_rows=<rows>) gives a time now")
    if test is None:
        test = sample.get("test") or math.ceil(train * DEFAULT_TEST_SHARE)
    return DataShape(train, validation or test, test, validation or 0, lengths, source)


def measured_shape(prepared: Prepared, lengths: Sequence[float] | None, source: str) -> DataShape:
    """The shape of the rows as fit() read them."""
    sizes = prepared.sizes()
    validation = sizes.get("validation", 0)
    test = sizes.get("test", 0) or validation
    return DataShape(sizes["train"], validation or test, test, validation, tuple(lengths) if lengths else None, source)


def workload(shape: DataShape, hyperparameters: Mapping[str, str], world: int) -> tuple[Workload, dict[str, Any]]:
    """The work of a plan's hyperparameters on ``shape`` (rows known) for ``world`` processes, and the parsed values."""
    hp = parse_hyperparameters(dict(hyperparameters))
    assert shape.train_rows is not None
    train_tokens = padded_tokens_per_row(shape.lengths, hp["max_length"], hp["batch_size"],
                                         pad_to_max=hp["pad_to_max_length"], group_by_length=hp["group_by_length"])
    eval_tokens = padded_tokens_per_row(shape.lengths, hp["max_length"], hp["eval_batch_size"],
                                        pad_to_max=hp["pad_to_max_length"], group_by_length=False)
    passes = evaluation_passes(hp, shape, world)
    work = Workload(
        train_rows=shape.train_rows, epochs=hp["epochs"], batch_size=hp["batch_size"], tokens_per_row=train_tokens,
        max_steps=hp["max_steps"], grad_accum=hp["gradient_accumulation_steps"],
        eval_rows=passes["epoch_evals"] * shape.eval_rows + shape.test_rows + passes["validation_predict"] * shape.validation_rows,
        eval_tokens_per_row=eval_tokens,
    )
    return work, hp


def epochs_run(hp: Mapping[str, Any], train_rows: int, world: int) -> int:
    """Epochs the Trainer starts (each ends with an evaluation and a checkpoint when so configured)."""
    if hp["max_steps"]:
        per_epoch = max(1, math.ceil(train_rows / (hp["batch_size"] * hp["gradient_accumulation_steps"] * world)))
        return math.ceil(hp["max_steps"] / per_epoch)
    return math.ceil(hp["epochs"])


def evaluation_passes(hp: Mapping[str, Any], shape: DataShape, world: int) -> dict[str, int]:
    """Evaluations after each epoch and the multi-label threshold pass, as the entry point runs them."""
    assert shape.train_rows is not None
    epoch_evals = epochs_run(hp, shape.train_rows, world) if (hp["eval_each_epoch"] and shape.eval_rows) else 0
    multi = hp["problem_type"] == "multi_label_classification"
    return {"epoch_evals": epoch_evals, "validation_predict": int(multi and shape.validation_rows > 0)}
