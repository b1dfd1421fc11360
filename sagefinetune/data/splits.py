"""Carving test and validation splits out of train, and sampling: seeded, stratified, and honest about shortfalls."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets as hf_datasets

LABEL = "label"
DEFAULT_SPLIT = {"test": 0.1, "stratify": True, "seed": 42}


def apply_split(dd: hf_datasets.DatasetDict, spec: dict[str, Any],
                describe: str) -> tuple[hf_datasets.DatasetDict, list[str]]:
    """Carve ``test`` (and ``validation``) out of ``train`` as ``spec`` says; the default split when there is no test.

    Returns the splits and a note for each class the default split could not put into the test split (a class of one
    row stays in train). A stratified split the user asked for refuses a class of one row instead.
    """
    import datasets
    import numpy as np

    if spec and "test" in dd and spec.get("test"):
        raise ConfigError(
            f"{describe} already has a test split ({len(dd['test'])} rows); .split(test=...) would "
            "make a second one. Fix: drop .split(...), or use .split(test=None, validation=...) for a validation split."
        )
    if "train" not in dd:
        near = next((s for s in dd if str(s).strip().lower() == "train"), None)
        hint = f" (did you mean {near!r}?)" if near else ""
        raise DataError(f"{describe} has no train split; it has {list(dd)}{hint}. "
                        f"Fix: Dataset.from_hub(..., splits={{'train': {near or '<name>'!r}, 'test': '<name>'}}).")
    default = not spec and "test" not in dd
    if default:
        spec = DEFAULT_SPLIT  # a user with one file expects it to work
    if not spec:
        return dd, []
    train = dd["train"]
    if len(train) == 0:
        raise DataError(f"the train split of {describe} is empty (0 rows), so there is nothing to split or train on. "
                        "Fix: check the source (a DataFrame or file with rows, the right split names).")
    stratify = bool(spec.get("stratify", True))
    lonely = one_row_classes(train) if stratify else []
    if lonely and not default and (spec.get("test") or spec.get("validation")):
        raise DataError(f"split(stratify=True) keeps every class on both sides, but {_classes(lonely)} "
                        f"{'has' if len(lonely) == 1 else 'have'} one row in all. Fix: add rows of "
                        f"{'it' if len(lonely) == 1 else 'them'}, drop {'it' if len(lonely) == 1 else 'them'} "
                        f"(.filter(lambda row: row['label'] not in {[v for v in lonely[:5]]!r})), or "
                        ".split(..., stratify=False).")
    codes = group_codes(train, stratify=stratify)
    rest = np.arange(len(train))
    out = {k: v for k, v in dd.items() if k != "train"}
    for name in ("test", "validation"):
        amount = spec.get(name)
        if not amount:
            continue
        taken, kept = carve(codes[rest], amount, spec.get("seed", 42), split=name, default=default)
        out[name] = train.select(rest[taken])
        rest = rest[kept]
    out["train"] = train.select(rest)
    notes = [f"the default split left {_classes(lonely)} out of the test split: one row each, kept for training, so "
             "the test scores say nothing about them. Fix: add rows of those classes, or give a test split of your "
             "own (from_csv({'train': ..., 'test': ...}))"] if lonely and default else []
    return datasets.DatasetDict(out), notes


def one_row_classes(part: Any) -> list[Any]:
    """The label values (class names for a ClassLabel column) that have exactly one row; none for multi-label rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = part.with_format("arrow")[LABEL]
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return []
    counts = pc.value_counts(column.drop_null()).to_pylist()
    values = sorted((c["values"] for c in counts if c["counts"] == 1), key=lambda v: (str(type(v)), v))
    names = getattr(part.features.get(LABEL), "int2str", None)
    return [names(v) for v in values] if names is not None else values


def _classes(values: list[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:10]) + (f" and {len(values) - 10} more" if len(values) > 10 else "")
    return f"class{'es' if len(values) > 1 else ''} {shown}"


def group_codes(part: Any, stratify: bool) -> Any:
    """One integer per row naming its label's group (all 0 when not stratified, or for multi-label rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = part.with_format("arrow")[LABEL] if stratify else None
    if column is None or pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return np.zeros(len(part), dtype=np.int64)
    codes = pc.index_in(column, value_set=pc.unique(column).drop_null())
    return np.asarray(pc.fill_null(codes, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def carve(codes: Any, amount: float | int, seed: int, *, split: str = "test", default: bool = False) -> tuple[Any, Any]:
    """Positions (taken, rest) of a split of ``len(codes)`` rows; ``amount`` is a fraction or a count.

    Rows are stratified by ``codes``: every group with two or more rows lands in both parts (largest-remainder
    rounding, then at least one row each way). When ``amount`` is too small to hold one row per group, the default
    split grows to fit; a split the user asked for is an error that says so. Vectorised: a million rows take
    milliseconds.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(codes)
    want = round(amount * n) if isinstance(amount, float) else int(amount)
    groups, inverse, sizes = np.unique(codes, return_inverse=True, return_counts=True)
    stratified = len(groups) > 1
    shared = {int(g) for g, size in enumerate(sizes) if size >= 2} if stratified else set()
    if stratified and want < len(shared):
        if not default:
            raise DataError(f"a stratified {split} split of {want} row(s) cannot hold one row of each of the "
                            f"{len(shared)} classes. Fix: .split({split}={len(shared)}) or more, more rows, or "
                            ".split(..., stratify=False).")
        want = len(shared)
    if n == 0:
        raise DataError(f"the data to split into a {split} split is empty (0 rows). Fix: check the source and the "
                        "filters; a DataFrame or file needs rows.")
    if not 0 < want < n or (stratified and n - want < len(shared)):
        raise DataError(f"{n} rows cannot be split into a {split} split of {want} and a train split that both hold "
                        f"every class. Fix: use more rows, or a smaller {split} split.")
    quotas = _quotas({g: int(size) for g, size in enumerate(sizes)}, want, shared)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    taken = [rng.permutation(order[starts[g]:starts[g + 1]])[:quotas[g]] for g in range(len(groups))]
    taken_idx = np.sort(np.concatenate(taken)) if taken else np.array([], dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[taken_idx] = False
    return taken_idx, rng.permutation(np.flatnonzero(mask))


def _quotas(sizes: dict[Any, int], want: int, shared: set[Any]) -> dict[Any, int]:
    """Rows to take per group: proportional (largest remainder), at least 1 and at most size-1 for shared groups."""
    total = sum(sizes.values())
    exact = {k: want * size / total for k, size in sizes.items()}
    quota = {k: math.floor(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: quota[k] - exact[k])[: want - sum(quota.values())]:
        quota[k] += 1
    for k in shared:
        quota[k] = min(max(quota[k], 1), sizes[k] - 1)
    while sum(quota.values()) > want:  # the minimums took rows: give them back from the largest quotas
        k = max((k for k in quota if quota[k] > (1 if k in shared else 0)), key=lambda k: quota[k])
        quota[k] -= 1
    while sum(quota.values()) < want:
        k = max((k for k in quota if quota[k] < sizes[k] - (1 if k in shared else 0)), key=lambda k: exact[k] - quota[k])
        quota[k] += 1
    return quota


def apply_sample(dd: hf_datasets.DatasetDict, spec: dict[str, Any]) -> tuple[hf_datasets.DatasetDict, list[str]]:
    """Seeded samples of at most ``n`` rows per split, and notes for every sample that got less than it asked.

    A sample of a split that is not there is refused before this (:func:`~sagefinetune.data.split_checks.check_sample_splits`).
    """
    import datasets

    spec = dict(spec)
    if not spec:
        return dd, []
    seed = spec.pop("seed")
    notes = []
    out = {}
    for split, part in dd.items():
        n = spec.get(split)
        if n and n > len(part):
            notes.append(f"sample({split}={n}): the {split} split has only {len(part)} rows; all of them are used. "
                         f"Fix: sample({split}={len(part)}) or fewer to say so, or more rows")
        out[split] = part.shuffle(seed=seed).select(range(min(n, len(part)))) if n else part
    return datasets.DatasetDict(out), notes
