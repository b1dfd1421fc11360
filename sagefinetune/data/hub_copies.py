"""Hub datasets known by a name that no longer loads: the maintained copy it resolves to, pinned, in the original's shape.

``amazon_reviews_multi`` was withdrawn by its provider in 2023 and its loading script no longer runs (datasets >= 4).
``Dataset.from_hub("amazon_reviews_multi")`` reads the maintained Parquet copy ``mteb/AmazonReviewsClassification``
at a pinned revision instead, and gives its rows the original's field names (``review_body``, ``stars`` 1..5,
``language``), so code written for the original (``.map_labels({1: "negative", ...})``) runs unchanged.

Everything here is pure (the table, the checks at the builder call, the description, the split sizes) except
:func:`reshape`, which works on rows already read (🤗 datasets and pyarrow are imported there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets as hf_datasets

__all__ = ["HubCopy", "HUB_COPIES", "UNAVAILABLE", "check_config", "reshape"]


@dataclass(frozen=True)
class HubCopy:
    """Where a withdrawn Hub dataset's name resolves, and how the copy's rows map back to the original's fields."""

    name: str  # the name users know
    repo: str  # the maintained copy on the Hub
    revision: str  # the commit read unless the user pins another
    configs: tuple[str, ...]  # the copy's configs (one per language); the default reads them all
    all_configs: str  # the original's config name for all of them
    config_column: str  # the column that says which config a row came from
    text: str  # the original's field names: the default text and label columns
    label: str
    copy_text: str  # the copy's columns they come from
    copy_label: str
    label_offset: int  # original label = copy label + offset
    rows: Mapping[str, int]  # rows per config and split, as published
    why: str

    def configs_of(self, name: str | None) -> tuple[str, ...]:
        """The configs a ``from_hub`` config name reads: all of them for None or :attr:`all_configs`."""
        return self.configs if name in (None, self.all_configs) else (str(name),)

    def split_rows(self, name: str | None) -> dict[str, int]:
        """Rows per split of what ``name`` reads, from the published sizes (no I/O)."""
        n = len(self.configs_of(name))
        return {split: rows * n for split, rows in self.rows.items()}

    def describe(self, name: str | None, revision: str | None) -> str:
        which = "all languages" if name in (None, self.all_configs) else repr(name)
        pin = revision if revision != self.revision else f"{self.revision[:7]} (pinned)"
        return f"hub({self.name!r} -> {self.repo}@{pin}, {which})"

    def line(self, name: str | None, revision: str) -> str:
        """The line printed when rows are read: which copy, which revision, which configs."""
        pinned = "the pinned revision" if revision == self.revision else "revision"
        configs = self.configs_of(name)
        return (f"{self.name}: reading its maintained copy {self.repo} at {pinned} {revision}; "
                f"{self.config_column}{'s' if len(configs) > 1 else ''} {', '.join(configs)}; {self.text} = {self.copy_text}, "
                f"{self.label} = {self.copy_label} + {self.label_offset}")


#: Withdrawn Hub names -> the maintained copy each resolves to (the pin is ``HUB_COPIES[name].revision``).
HUB_COPIES: Mapping[str, HubCopy] = MappingProxyType({
    "amazon_reviews_multi": HubCopy(
        name="amazon_reviews_multi",
        repo="mteb/AmazonReviewsClassification",
        # The revision MTEB's AmazonReviewsClassification task pins (mteb/tasks/.../AmazonReviewsClassification.py).
        revision="6b5d328eaae8ef408dd7d775040245cf86f92e9d",
        configs=("de", "en", "es", "fr", "ja", "zh"),
        all_configs="all_languages",
        config_column="language",
        text="review_body",
        label="stars",
        copy_text="text",
        copy_label="label",
        label_offset=1,
        rows=MappingProxyType({"train": 200_000, "validation": 5_000, "test": 5_000}),
        why="its provider withdrew it from the Hub in 2023, and datasets >= 4 runs no loading scripts",
    ),
})

#: Hub ids that cannot be loaded, with what to use instead.
UNAVAILABLE: Mapping[str, str] = MappingProxyType({
    repo: (f"{repo!r} cannot be loaded: {why}. Fix: Dataset.from_hub('amazon_reviews_multi', 'en') (or no config for "
           "all six languages) reads the maintained Parquet copy mteb/AmazonReviewsClassification at a pinned "
           "revision, with the original's fields review_body, stars 1..5 and language.")
    for repo, why in (
        ("mteb/amazon_reviews_multi", "it is a loading-script repository, and datasets >= 4 runs no loading scripts"),
        ("defunct-datasets/amazon_reviews_multi", "it holds no data since the provider withdrew the dataset in 2023"),
    )
})


def check_config(copy: HubCopy, name: Any) -> str | None:
    """The config name of a ``from_hub`` call on a copy, checked at the call (None: every config)."""
    if name is None or name == copy.all_configs:
        return None
    if not isinstance(name, str) or name not in copy.configs:
        from sagefinetune.errors import did_you_mean

        hint = (did_you_mean(name.lower(), list(copy.configs) + [copy.all_configs]) if isinstance(name, str) else "") or "."
        raise ConfigError(
            f"{copy.name!r} has no config {name!r}{hint} Its configs are the {copy.config_column}s "
            f"{', '.join(copy.configs)} (or {copy.all_configs!r}). Fix: Dataset.from_hub({copy.name!r}, 'en'), or no "
            "config for all of them."
        )
    return name


def reshape(copy: HubCopy, config: str, part: hf_datasets.Dataset, split: str) -> hf_datasets.Dataset:
    """One split of one config of the copy, as the original's fields: text, label + offset, and the config name."""
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in (copy.copy_text, copy.copy_label) if c not in part.column_names]
    if missing:
        raise DataError(
            f"{copy.repo} ({config}, {split}) has no column {missing[0]!r}; its columns are {part.column_names}. The "
            f"copy changed shape at this revision. Fix: keep the pinned revision (revision={copy.revision!r}), or "
            f"read {copy.repo!r} itself with .columns(text=..., label=...)."
        )
    table = part.with_format("arrow")[:]
    labels = table[copy.copy_label]
    if not pa.types.is_integer(labels.type):
        raise DataError(f"{copy.repo} ({config}, {split}): the {copy.copy_label!r} column holds {labels.type}, not "
                        f"integer star classes. Fix: keep the pinned revision (revision={copy.revision!r}).")
    shaped = pa.table({
        copy.text: table[copy.copy_text],
        copy.label: pc.add(labels.cast(pa.int64()), copy.label_offset),
        copy.config_column: pa.array([config] * table.num_rows, type=pa.string()),
    })
    return datasets.Dataset(shaped, fingerprint=f"{part._fingerprint}-{copy.name}-{config}")
