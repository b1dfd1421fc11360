"""A column that says which split each row belongs to (``train`` / ``validation`` / ``test``): honoured, not trained on.

``from_pandas(df, split_column="split")`` (and ``from_csv`` / ``from_json`` / ``from_parquet``) splits the rows by
that column. Without the argument, a column named ``split`` whose values are all split names is used the same way,
and loading says so in one line; ``split_column=False`` keeps such a column as data. ``dev``, ``valid``, ``val`` and
``eval`` mean ``validation``; case and spaces do not matter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sagefinetune.data.split_checks import SPLITS
from sagefinetune.errors import ColumnError, ConfigError, DataError, did_you_mean

if TYPE_CHECKING:
    import datasets as hf_datasets

    from sagefinetune.data.dataset import Dataset

__all__ = ["SPLIT_COLUMN", "check_split_column", "split_of", "holds_split_names", "split_by_column", "used_line",
           "plan_split_rows"]

SPLIT_COLUMN = "split"  # the name detected without split_column=
ALIASES = {"dev": "validation", "valid": "validation", "val": "validation", "eval": "validation"}


def check_split_column(value: Any, where: str) -> str | bool | None:
    """``split_column=``: a column name, None (detect a column named ``split``) or False (no split column)."""
    if value is None or value is False or (isinstance(value, str) and value.strip()):
        return value
    raise ConfigError(f"{where}(split_column=...) needs a column name, None (detect a column named 'split') or False; "
                      f"got {value!r}. Fix: {where}(..., split_column='split').")


def split_of(value: Any) -> str | None:
    """Our split name for a value of a split column, or None when it is not one."""
    name = str(value).strip().lower()
    return name if name in SPLITS else ALIASES.get(name)


def holds_split_names(values: Iterable[Any]) -> bool:
    """Whether every value is a split name (and there is at least one)."""
    seen = list(values)
    return bool(seen) and all(split_of(v) is not None for v in seen)


def _column(dataset_split: Any, column: str, describe: str, chosen: bool) -> list[Any] | None:
    names = list(dataset_split.column_names)
    if column in names:
        return list(dataset_split[column])
    if chosen:
        raise ColumnError(f"split_column={column!r} is not a column of {describe}{did_you_mean(column, names)} The "
                          f"columns are {names}. Fix: split_column=<one of those>, or leave it out.")
    return None


def split_by_column(dd: hf_datasets.DatasetDict, split_column: str | bool | None,
                    describe: str) -> tuple[hf_datasets.DatasetDict, str | None]:
    """The rows of a one-split source split by its split column (see the module docstring), and the line that says
    a detected column was used (None when none was, or when it was named)."""
    import datasets

    if split_column is False or list(dd) != ["train"]:
        if isinstance(split_column, str) and list(dd) != ["train"]:
            raise ConfigError(f"split_column={split_column!r} splits one table, but {describe} already has the splits "
                              f"{list(dd)}. Fix: drop split_column=, or pass one table.")
        return dd, None
    column = split_column if isinstance(split_column, str) else SPLIT_COLUMN
    values = _column(dd["train"], column, describe, chosen=isinstance(split_column, str))
    if values is None or (split_column is None and not holds_split_names(set(values))):
        return dd, None
    names = [split_of(v) for v in values]
    unknown = Counter(str(v) for v, n in zip(values, names) if n is None)
    if unknown:
        shown = ", ".join(f"{v!r} ({n} rows)" for v, n in unknown.most_common(5))
        raise DataError(f"the split column {column!r} of {describe} holds values that are not split names: {shown}. "
                        f"Fix: use {list(SPLITS)} (dev/val/valid/eval mean validation), or drop those rows.")
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        positions.setdefault(str(name), []).append(i)
    if "train" not in positions:
        raise DataError(f"the split column {column!r} of {describe} marks no row 'train' ({_counts(positions)}). "
                        "Fix: mark the rows to train on 'train'.")
    out = datasets.DatasetDict({k: dd["train"].select(v) for k, v in sorted(positions.items(), key=lambda kv: SPLITS.index(kv[0]))})
    return out, (used_line(column, {k: len(v) for k, v in positions.items()}) if split_column is None else None)


def used_line(column: str, counts: dict[str, int]) -> str:
    """The one line that says a detected split column is used."""
    return (f"the column {column!r} holds split names ({_counts(counts)}): its rows are used as those splits, so no "
            "test split is carved from train; split_column=False keeps it as data")


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {len(v) if isinstance(v, list) else v:,}" for k, v in counts.items())


def plan_split_rows(dataset: Dataset) -> tuple[dict[str, int], str] | None:
    """Before launch: the rows per split that the split column gives (a DataFrame's exactly; a file's scaled from its
    first rows to its line count), and the line the plan shows; None when no split column applies or it cannot be
    read cheaply."""
    from sagefinetune.data.peek import count_rows, first_rows

    if dataset.split_column is False or dataset.source.kind not in ("pandas", "csv", "json", "parquet"):
        return None
    column = dataset.split_column if isinstance(dataset.split_column, str) else SPLIT_COLUMN
    whole, frames = dataset.source.kind == "pandas", dataset.frames  # frames: None unless from_pandas
    rows = (tuple(frames["train"][[column]].to_dict("records")) if frames is not None and list(frames) == ["train"]
            and column in frames["train"].columns else None)
    if rows is None and not whole:
        found = first_rows(dataset)
        rows = found[0] if found is not None and column in found[0][0] else None
    if not rows or not holds_split_names({r[column] for r in rows}):
        return None
    counts = Counter(str(split_of(r[column])) for r in rows)
    total = (count_rows(dataset) or {}).get("train", len(rows))
    scaled = {k: round(n * total / len(rows)) for k, n in counts.items()}
    return scaled, used_line(column, scaled) + ("" if whole or total == len(rows) else
                                               f" (counts scaled from the first {len(rows):,} rows)")
