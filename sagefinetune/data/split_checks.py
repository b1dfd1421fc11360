"""Checks on the split names a Dataset is given and on the samples it asks for, at the builder call where they can be
made and at load where only the data can tell: a misspelt split name gets a did-you-mean instead of being ignored, and
a sample of a split the data does not have is an error instead of a silent no-op."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sagefinetune.errors import ConfigError, did_you_mean

#: The split names a Dataset knows; other names would be carried along and never used.
SPLITS = ("train", "test", "validation")


def check_split_names(names: Iterable[Any], where: str, example: str) -> None:
    """Every name is one of :data:`SPLITS` (``'Train'`` and ``'dev'`` are refused, with the name to use)."""
    for name in names:
        if name in SPLITS:
            continue
        lowered = str(name).strip().lower()
        near = next((s for s in SPLITS if s == lowered), None) or {"dev": "validation", "valid": "validation",
                                                                   "val": "validation", "eval": "validation"}.get(lowered)
        hint = f"; did you mean {near!r}?" if near else did_you_mean(str(name), SPLITS)
        raise ConfigError(f"{where}: unknown split name {name!r}{hint} A Dataset has the splits {list(SPLITS)}; "
                          f"another name would never be used. Fix: {example.replace('<name>', near or 'train')}.")


def check_hub_splits(splits: Any) -> dict[str, str] | None:
    """``from_hub(splits=...)``: our split names -> the dataset's, e.g. ``{"train": "train", "test": "validation"}``."""
    if splits is None:
        return None
    if not isinstance(splits, Mapping):
        names = list(splits) if isinstance(splits, (list, tuple, set)) else None
        fix = ("{" + ", ".join(f"{n!r}: {n!r}" for n in names) + "}") if names and all(
            isinstance(n, str) for n in names) else "{'train': 'train', 'test': 'test'}"
        raise ConfigError(f"from_hub(splits=...) maps our split names to the dataset's; got a "
                          f"{type(splits).__name__} {splits!r}. Fix: splits={fix}.")
    check_split_names(splits, "from_hub(splits=...)", "splits={'<name>': '<the dataset's split>'}")
    bad = {k: v for k, v in splits.items() if not isinstance(v, str) or not v.strip()}
    if bad:
        raise ConfigError(f"from_hub(splits=...) needs the dataset's split names as text; got {bad!r}. "
                          "Fix: splits={'train': 'train', 'test': 'validation'}.")
    return dict(splits)


def check_sample_splits(sample: Mapping[str, Any], available: Iterable[str], where: str) -> None:
    """A sample of a split the data does not have (and no ``.split(...)`` makes) is refused, naming the splits."""
    have = sorted(available)
    for split, n in sample.items():
        if split != "seed" and split not in have:
            raise ConfigError(f"sample({split}={n}) asks for rows of a {split} split, but {where} has no {split} "
                              f"split (it has {have}). Fix: add .split({split}=0.1) to carve one out of train, or "
                              f"drop {split}={n} from .sample(...).")
