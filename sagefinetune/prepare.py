"""Turn a Job's Dataset into checked, label-encoded splits, and write them as data channels."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dataset import LABEL, PAIR, ROW, TEXT
from .entrypoint.contract import DATA_FILE, render_hyperparameter
from .errors import DataError, LabelError
from .labels import LabelMap

if TYPE_CHECKING:
    import datasets

    from .job import Job

VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class Prepared:
    """Checked splits with labels encoded as class ids (lists of ids for multi-label)."""

    splits: datasets.DatasetDict
    label_map: LabelMap
    text_pair: bool
    notes: tuple[str, ...] = ()  # what loading did differently from what was asked (e.g. a sample larger than a split)

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}

    def write(self, root: str | Path) -> dict[str, Path]:
        """Write each split to ``root/<split>/data.jsonl``; returns split -> folder."""
        out = {}
        for split, part in self.splits.items():
            folder = Path(root) / split
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (DATA_FILE + ".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in part:
                    fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            os.replace(tmp, folder / DATA_FILE)
            out[split] = folder
        return out

    def with_data_hyperparameters(self, hyperparameters: Mapping[str, str]) -> dict[str, str]:
        """``hyperparameters`` plus what only the data tells: class names, problem type, the pair column."""
        out = dict(hyperparameters)
        out.setdefault("labels", render_hyperparameter(list(self.label_map.names_)))
        out.setdefault("problem_type", self.label_map.problem_type)
        if self.text_pair:
            out.setdefault("text_pair_column", PAIR)
        return out

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of the rows and labels: the same data gives the same prefix in S3 (computed once)."""
        digest = hashlib.sha256(json.dumps(self.label_map.to_dict(), sort_keys=True).encode())
        for split in sorted(self.splits):
            digest.update(split.encode())
            digest.update(_rows_hash(self.splits[split]).encode())
        return digest.hexdigest()[:16]


def _rows_hash(part: Any) -> str:
    digest = hashlib.sha256()
    for row in part:
        digest.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode())
    return digest.hexdigest()


def prepare(job: Job) -> Prepared:
    """Quietly: the label encoding takes milliseconds and its progress bars would drown the training bar."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return _prepare(job)
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _prepare(job: Job) -> Prepared:
    import datasets

    dd, notes = job.dataset.load_with_rows()
    feature = dd["train"].features.get(LABEL)
    class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    label_map = job.label_map
    if label_map is not None and class_names and all(isinstance(k, str) for k in label_map.mapping):
        # the map names the ClassLabel's names ("pos"), the column holds ids: compare names with names
        dd = datasets.DatasetDict({
            k: v.map(lambda b: {LABEL: feature.int2str(b[LABEL])}, batched=True, features=_string_label(v.features))
            for k, v in dd.items()
        })
    if label_map is None:
        label_map = LabelMap.infer(dd["train"][LABEL], class_names)
    label_map.check_splits({split: part[LABEL] for split, part in dd.items()})
    for split, part in dd.items():
        check_texts(part, split, job.dataset)
    missing = [n for n in label_map.names_ if not label_map.is_multi_label and n not in _names_in(dd["train"], label_map)]
    if missing:
        raise LabelError(
            f"classes {missing} have no rows in the train split; the model could never predict them. "
            "Fix: sample more rows, or remove them from the label map."
        )
    dd = datasets.DatasetDict({k: v.remove_columns([ROW]) for k, v in dd.items()})

    if label_map.is_multi_label and "validation" not in dd:
        parts = dd["train"].train_test_split(test_size=VALIDATION_FRACTION, seed=42)
        dd = datasets.DatasetDict({**dd, "train": parts["train"], "validation": parts["test"]})

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if label_map.is_multi_label:
            return {LABEL: [[i for i, on in enumerate(label_map.encode_multi(v)) if on] for v in batch[LABEL]]}
        return {LABEL: [label_map.encode(v) for v in batch[LABEL]]}

    label_type = datasets.Sequence(datasets.Value("int64")) if label_map.is_multi_label else datasets.Value("int64")
    encoded = {}
    for split, part in dd.items():
        features = part.features.copy()
        features[LABEL] = label_type
        encoded[split] = part.map(encode, batched=True, features=features, desc=f"labels {split}")
    return Prepared(datasets.DatasetDict(encoded), label_map, PAIR in dd["train"].column_names, tuple(notes))


def check_texts(part: Any, split: str, dataset: Any) -> None:
    """The text column(s) hold text, and no row's text is empty; errors name the row in the user's data."""
    for role, column in ((TEXT, dataset.text), (PAIR, dataset.text_pair)):
        if role not in part.column_names:
            continue
        dtype = getattr(part.features[role], "dtype", None)
        if dtype not in ("string", "large_string", "null"):
            raise DataError(
                f"the {role} column {column!r} holds {dtype} values (e.g. {part[0][role]!r}), not text. "
                f"Fix: .columns({role}=<the column that holds the text>), or convert it to strings first."
            )
        empty = [row for row, t in zip(part[ROW], part[role]) if t is None or not str(t).strip()]
        if empty:
            raise DataError(
                f"{len(empty)} row(s) of the {split} split have an empty {role} ({column!r}); the first is row "
                f"{empty[0]} of that split as loaded (counting from 0, before any split or sample). Fix: drop them, e.g. "
                f"Dataset.filter(lambda row: bool(row[{role!r}]))."
            )


def _names_in(part: Any, label_map: LabelMap) -> set[str]:
    found = set()
    for v in part[LABEL]:
        name = label_map._lookup(v)
        if name is not None:
            found.add(name)
    return found


def _string_label(features: Mapping[str, Any]) -> Any:
    import datasets

    f = datasets.Features(dict(features))
    f[LABEL] = datasets.Value("string")
    return f
