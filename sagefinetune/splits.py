"""Carving test and validation splits out of train, and sampling: seeded, stratified, and honest about shortfalls."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets as hf_datasets

LABEL = "label"
DEFAULT_SPLIT = {"test": 0.1, "stratify": True, "seed": 42}


def apply_split(dd: hf_datasets.DatasetDict, spec: dict[str, Any], describe: str) -> hf_datasets.DatasetDict:
    """Carve ``test`` (and ``validation``) out of ``train`` as ``spec`` says; the default split when there is no test."""
    import datasets

    if spec and "test" in dd and spec.get("test"):
        raise ConfigError(
            f"{describe} already has a test split ({len(dd['test'])} rows); .split(test=...) would "
            "make a second one. Fix: drop .split(...), or use .split(test=None, validation=...) for a validation split."
        )
    if "train" not in dd:
        raise DataError(f"{describe} has no train split; it has {list(dd)}. "
                        "Fix: Dataset.from_hub(..., splits={'train': '<name>', 'test': '<name>'}).")
    default = not spec and "test" not in dd
    if default:
        spec = DEFAULT_SPLIT  # a user with one file expects it to work
    if not spec:
        return dd
    train = dd["train"]
    labels = train[LABEL]
    stratify = spec.get("stratify", True) and not any(isinstance(v, list) for v in labels[:100])
    rest = list(range(len(train)))
    out = {k: v for k, v in dd.items() if k != "train"}
    for name in ("test", "validation"):
        amount = spec.get(name)
        if not amount:
            continue
        taken, rest = carve(rest, [labels[i] for i in rest], amount, stratify, spec.get("seed", 42),
                            split=name, default=default)
        out[name] = train.select(taken)
    out["train"] = train.select(rest)
    return datasets.DatasetDict(out)


def carve(indices: list[int], labels: list[Any], amount: float | int, stratify: bool, seed: int, *,
          split: str = "test", default: bool = False) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (taken, rest); ``amount`` is a fraction or a count.

    Stratified, every class with two or more rows lands in both parts (largest-remainder rounding, then at least one
    row each way). When ``amount`` is too small to hold one row per class, the default split grows to fit; a split
    the user asked for is an error that says so.
    """
    rng = random.Random(seed)
    n = len(indices)
    want = round(amount * n) if isinstance(amount, float) else int(amount)
    groups: dict[Any, list[int]] = defaultdict(list)
    for idx, lab in zip(indices, labels):
        groups[repr(lab) if stratify else None].append(idx)
    shared = [k for k, members in groups.items() if len(members) >= 2] if stratify else []
    if stratify and want < len(shared):
        if not default:
            raise DataError(f"a stratified {split} split of {want} row(s) cannot hold one row of each of the "
                            f"{len(shared)} classes. Fix: .split({split}={len(shared)}) or more, more rows, or "
                            ".split(..., stratify=False).")
        want = len(shared)
    if not 0 < want < n or (stratify and n - want < len(shared)):
        raise DataError(f"{n} rows cannot be split into a {split} split of {want} and a train split that both hold "
                        f"every class. Fix: use more rows, or a smaller {split} split.")
    quotas = _quotas({k: len(v) for k, v in groups.items()}, want, set(shared))
    taken: list[int] = []
    for key in sorted(groups, key=str):
        members = groups[key]
        rng.shuffle(members)
        taken.extend(members[:quotas[key]])
    taken_set = set(taken)
    rest = [i for i in indices if i not in taken_set]
    rng.shuffle(rest)
    return sorted(taken), rest


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
    """Seeded samples of at most ``n`` rows per split, and notes for every sample that got less than it asked."""
    import datasets

    spec = dict(spec)
    if not spec:
        return dd, []
    seed = spec.pop("seed")
    notes = [f"sample({split}={n}): there is no {split} split, so nothing was sampled"
             for split, n in spec.items() if split not in dd]
    out = {}
    for split, part in dd.items():
        n = spec.get(split)
        if n and n > len(part):
            notes.append(f"sample({split}={n}): the {split} split has only {len(part)} rows; all of them are used")
        out[split] = part.shuffle(seed=seed).select(range(min(n, len(part)))) if n else part
    return datasets.DatasetDict(out), notes
