"""A cheap look at local data before launch: the one reader ``plan()`` uses.

What it reads, and no more:

- :func:`columns_of`: the column names: a CSV's header line, a Parquet file's schema, the keys of a JSON file's first
  row, a DataFrame's columns. No rows.
- :func:`first_rows`: at most :data:`ROWS` rows of the train file(s) (every column), with the standard library
  (pyarrow for Parquet): the text lengths ``max_length="auto"`` plans with, the column choice and the data report.
- :func:`count_rows`: the rows of each file. Parquet: the row count in its metadata (exact). CSV and JSON Lines: a
  fast count of the non-empty lines (minus the header), exact unless a quoted CSV field holds line breaks, when it
  counts more rows than there are (a file of fewer than :data:`ROWS` rows is parsed whole, so its count is exact). A
  JSON array under :data:`MAX_ARRAY_BYTES` is parsed; a larger one is not counted.

Everything else (Hub datasets, ``from_disk``, ``from_s3``, glob patterns) is not read before launch: None. A file
that cannot be read this way is not an error here (``fit()`` reads it and says what is wrong): None.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagefinetune.data.dataset import Dataset

__all__ = ["first_rows_lengths", "first_rows", "columns_of", "count_rows", "split_files", "ROWS"]

ROWS = 2000
MAX_ARRAY_BYTES = 20 * 2**20
FILE_KINDS = ("csv", "json", "parquet")
_FAILURES = (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, ImportError, csv.Error, StopIteration)


def split_files(dataset: Dataset) -> dict[str, list[str]] | None:
    """``{split: [paths]}`` of a from_csv / from_json / from_parquet Dataset whose files all exist (no patterns)."""
    source = dataset.source
    if source.kind not in FILE_KINDS:
        return None
    files = source.args[0]
    named = {k: list(v) for k, v in files} if files and isinstance(files[0], tuple) else {"train": list(files)}
    if not all(os.path.isfile(p) for paths in named.values() for p in paths):
        return None  # patterns are left to fit()
    return named


def first_rows(dataset: Dataset, split: str = "train", rows: int = ROWS) -> tuple[tuple[Mapping[str, Any], ...], str] | None:
    """The first ``rows`` rows of ``split`` (all columns), and a description of what was read; None where nothing can
    be read cheaply. A DataFrame's rows are its first rows."""
    if dataset.frames is not None and split in dataset.frames:
        frame = dataset.frames[split].head(rows)
        return tuple(frame.to_dict("records")), f"the DataFrame's first {len(frame):,} rows"
    files = split_files(dataset)
    if not files or split not in files:
        return None
    path = files[split][0]
    try:
        records = _records(dataset.source.kind, path, os.path.getmtime(path), dataset.source.kwargs, rows)
    except _FAILURES:
        return None
    if not records:
        return None
    return records, f"the first {len(records):,} rows of {os.path.basename(path)}"


def first_rows_lengths(dataset: Dataset, rows: int = ROWS) -> tuple[tuple[int, ...], str] | None:
    """Character lengths (the text and the pair together) of the first ``rows`` train rows, and what was read."""
    found = first_rows(dataset, "train", rows)
    columns = (dataset.text,) + ((dataset.text_pair,) if dataset.text_pair else ())
    if found is None or any(c not in found[0][0] for c in columns):
        return None
    return tuple(sum(len(str(r.get(c) or "")) for c in columns) for r in found[0]), found[1]


def columns_of(dataset: Dataset) -> dict[str, list[str]] | None:
    """``{split: column names}`` from headers and schemas only; None where they cannot be had cheaply."""
    if dataset.frames is not None:
        return {k: [str(c) for c in v.columns] for k, v in dataset.frames.items()}
    if dataset.source.kind == "example":
        return {"train": ["text", "label"], "test": ["text", "label"]}
    return per_split(dataset, lambda kind, paths, kwargs: list(_header(kind, paths[0], os.path.getmtime(paths[0]),
                                                                       kwargs)))


def count_rows(dataset: Dataset) -> dict[str, int] | None:
    """``{split: rows}`` of local files (see the module docstring for how exact), or of DataFrames; else None."""
    if dataset.frames is not None:
        return {k: len(v) for k, v in dataset.frames.items()}

    def rows(kind: str, paths: list[str], kwargs: Any) -> int | None:
        counts = [_count(kind, p, os.path.getmtime(p), kwargs) for p in paths]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)

    return per_split(dataset, rows)


def per_split(dataset: Dataset, read: Callable[[str, list[str], Any], Any]) -> dict[str, Any] | None:
    """``{split: read(kind, the split's local files, the source's options)}``; None where a split has no local files,
    a file cannot be read, or ``read`` gives None."""
    files = split_files(dataset)
    if not files:
        return None
    out = {}
    for split, paths in files.items():
        try:
            out[split] = read(dataset.source.kind, paths, dataset.source.kwargs)
        except _FAILURES:
            return None
        if out[split] is None:
            return None
    return out


def count_basis(kind: str) -> str:
    """How :func:`count_rows` counts rows of this kind, in words."""
    return "the row count in the Parquet metadata" if kind == "parquet" else "a line count of the file"


# ---- readers (cached by path and modification time) ------------------------------------------------------------
def _csv_options(path: str, kwargs: Mapping[str, Any]) -> tuple[str, str, str]:
    sep = kwargs.get("sep") or kwargs.get("delimiter") or ("\t" if path.endswith(".tsv") else ",")
    return sep, kwargs.get("quotechar") or '"', kwargs.get("encoding") or "utf-8"


@lru_cache(maxsize=32)
def _records(kind: str, path: str, mtime: float, options: tuple[tuple[str, Any], ...],
             rows: int) -> tuple[Mapping[str, Any], ...]:
    kwargs = dict(options)
    if kind == "parquet":
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
        return tuple(batch.to_pylist()) if batch is not None else ()
    if kind == "csv":
        sep, quote, encoding = _csv_options(path, kwargs)
        with open(path, newline="", encoding=encoding) as fh:
            return tuple(islice(csv.DictReader(fh, delimiter=sep, quotechar=quote), rows))
    return tuple(_json_rows(path, kwargs.get("encoding") or "utf-8", rows))


@lru_cache(maxsize=32)
def _header(kind: str, path: str, mtime: float, options: tuple[tuple[str, Any], ...]) -> tuple[str, ...]:
    kwargs = dict(options)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return tuple(pq.read_schema(path).names)
    if kind == "csv":
        sep, quote, encoding = _csv_options(path, kwargs)
        with open(path, newline="", encoding=encoding) as fh:
            return tuple(next(csv.reader(fh, delimiter=sep, quotechar=quote)))
    first = _json_rows(path, kwargs.get("encoding") or "utf-8", 1)
    return tuple(first[0]) if first else ()


@lru_cache(maxsize=32)
def _count(kind: str, path: str, mtime: float, options: tuple[tuple[str, Any], ...]) -> int | None:
    if kind == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if kind == "json" and _is_array(path, dict(options).get("encoding") or "utf-8"):
        return None if os.path.getsize(path) > MAX_ARRAY_BYTES else len(_json_rows(path, "utf-8", 10**9))
    lines = 0
    with open(path, "rb") as fh:
        for line in fh:
            lines += bool(line.strip())
    if kind == "csv":
        lines -= 1  # the header
        if lines < ROWS:  # small: parse it whole, so quoted line breaks count right
            return len(_records(kind, path, mtime, options, ROWS))
    return max(lines, 0)


def _is_array(path: str, encoding: str) -> bool:
    with open(path, encoding=encoding) as fh:
        start = fh.read(1)
        while start.isspace():
            start = fh.read(1)
    return start == "["


def _json_rows(path: str, encoding: str, rows: int) -> list[dict[str, Any]]:
    if _is_array(path, encoding):  # a JSON array of rows: read whole, when small
        if os.path.getsize(path) > MAX_ARRAY_BYTES:
            return []
        with open(path, encoding=encoding) as fh:
            return list(json.load(fh))[:rows]
    with open(path, encoding=encoding) as fh:
        return [json.loads(line) for line in islice((x for x in fh if x.strip()), rows)]
