"""The data channels: read the files, check the columns and texts, encode labels, tokenize."""

from __future__ import annotations

import glob
import os
from typing import Any

if __package__:
    from . import contract, truncation
else:  # run as a script: contract.py sits beside this file
    import contract  # type: ignore[no-redef]
    import truncation  # type: ignore[no-redef]

FORMATS = (("json", ("*.jsonl", "*.json")), ("parquet", ("*.parquet",)), ("csv", ("*.csv",)))


def load_channel(path: str) -> Any:
    """The rows of one channel folder: JSON Lines, Parquet or CSV files (the first kind found)."""
    import datasets

    for kind, patterns in FORMATS:
        files = sorted(f for p in patterns for f in glob.glob(os.path.join(path, "**", p), recursive=True))
        if files:
            return datasets.load_dataset(kind, data_files=files, split="train")
    raise SystemExit(f"channel {path} holds no .jsonl, .json, .parquet or .csv files")


def label_encoder(names: list[str], mapping: dict[str, str], column: str = "label") -> Any:
    """value -> class id. Prepared channels hold ids (or names); raw files come with a raw-value -> name mapping.

    A value that cannot be encoded stops the run with the value, the column and the fix (it becomes the job's
    FailureReason on SageMaker).
    """
    label2id = {n: i for i, n in enumerate(names)}
    drop = f"or remove the rows whose {column!r} is that value from the files."

    def one(value: Any) -> int:
        if mapping:
            key = contract.label_key(value)
            if key not in mapping:
                raise ValueError(f"label value {value!r} in column {column!r} is not in the label map {sorted(mapping)}. "
                                 f"Fix: name it in .map_labels({{{value!r}: '<class name>', ...}}), {drop}")
            return label2id[mapping[key]]
        if isinstance(value, str):
            if value not in label2id:
                raise ValueError(f"label {value!r} in column {column!r} is not one of {names}. "
                                 f"Fix: add it to the label map, {drop}")
            return label2id[value]
        value = int(value)
        if not 0 <= value < len(names):
            raise ValueError(f"label id {value} in column {column!r} is outside 0..{len(names) - 1} "
                             f"({len(names)} classes). Fix: a label map that names class {value}, {drop}")
        return value

    return one


def encode_labels(ds: Any, hp: dict[str, Any], names: list[str], multi: bool) -> Any:
    """Add a ``labels`` column: class ids, or multi-hot float vectors for multi-label."""
    one = label_encoder(names, hp["label_mapping"], hp["label_column"])

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: list[Any] = []
        for value in batch[hp["label_column"]]:
            if multi:
                hot = [0.0] * len(names)
                for item in value:
                    hot[one(item)] = 1.0
                out.append(hot)
            else:
                out.append(one(value))
        return {"labels": out}

    return ds.map(encode, batched=True, desc="labels")


def check_columns(name: str, ds: Any, columns: list[str]) -> None:
    """Every named column exists, and the text columns hold text (not numbers)."""
    for col in columns:
        if col not in ds.column_names:
            raise SystemExit(f"the {name} channel has no column {col!r}; it has {ds.column_names}")
    for col in columns[:1] + columns[2:]:  # the text column(s), not the label
        dtype = getattr(ds.features.get(col), "dtype", "string")
        if dtype not in ("string", "large_string"):
            raise SystemExit(f"the text column {col!r} of the {name} channel holds {dtype} values, not text. "
                             "Fix: name the column that holds the text, or store it as strings.")


def tokenize_splits(splits: dict[str, Any], tokenizer: Any, hp: dict[str, Any], names: list[str], multi: bool,
                    max_length: int) -> dict[str, Any]:
    """Label-encode and tokenize every split, keeping only the model's inputs and ``labels``; inputs longer than
    ``max_length`` are cut by the ``truncation`` hyperparameter (see truncation.py)."""
    pair = hp["text_pair_column"] or None
    padding = "max_length" if hp["pad_to_max_length"] else False
    how = hp.get("truncation") or "head"

    def tokenize(batch: dict[str, list[Any]]) -> Any:
        texts = [t or "" for t in batch[hp["text_column"]]]
        pairs = [t or "" for t in batch[pair]] if pair else None
        return truncation.encode(tokenizer, texts, pairs, max_length, how, padding=padding)

    out = {}
    for name, ds in splits.items():
        check_columns(name, ds, [hp["text_column"], hp["label_column"]] + ([pair] if pair else []))
        ds = encode_labels(ds, hp, names, multi)
        ds = ds.map(tokenize, batched=True, desc=f"tokenize {name}")
        keep = {"labels", *tokenizer.model_input_names}
        out[name] = ds.remove_columns([c for c in ds.column_names if c not in keep])
    return out


def label_counts(ds: Any, names: list[str], multi: bool) -> dict[str, int]:
    """Rows per class of an encoded split (multi-label: rows where each label is on), every class named."""
    counts = [0] * len(names)
    for value in ds["labels"]:
        if multi:
            for i, on in enumerate(value):
                counts[i] += int(on > 0.5)
        else:
            counts[int(value)] += 1
    return dict(zip(names, counts))
