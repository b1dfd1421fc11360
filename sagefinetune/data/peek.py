"""A cheap look at a local file's first rows before launch: the text lengths ``max_length="auto"`` plans with.

Reads at most :data:`ROWS` rows of the train file(s) of a ``from_csv``, ``from_json`` (JSON Lines, or a JSON array
under :data:`MAX_ARRAY_BYTES`) or ``from_parquet`` Dataset, only the text column(s), with the standard library
(pyarrow for Parquet). Everything else (Hub datasets, ``from_disk``, ``from_s3``) is not read before launch: None.
A file that cannot be read this way is not an error here (``fit()`` reads it and says what is wrong): None.
"""

from __future__ import annotations

import csv
import json
import os
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagefinetune.data.dataset import Dataset

__all__ = ["first_rows_lengths", "ROWS"]

ROWS = 2000
MAX_ARRAY_BYTES = 20 * 2**20


def first_rows_lengths(dataset: Dataset, rows: int = ROWS) -> tuple[tuple[int, ...], str] | None:
    """Character lengths (the text and the pair together) of the first ``rows`` rows of the train file(s), and a
    description of what was read; None where nothing can be read cheaply."""
    source = dataset.source
    if source.kind not in ("csv", "json", "parquet"):
        return None
    files = source.args[0]
    train = dict(files).get("train", []) if files and isinstance(files[0], tuple) else list(files)
    paths = [p for p in train if os.path.isfile(p)]  # patterns are left to fit()
    if not paths:
        return None
    columns = (dataset.text,) + ((dataset.text_pair,) if dataset.text_pair else ())
    try:
        lengths = _lengths(source.kind, paths[0], os.path.getmtime(paths[0]), columns, source.kwargs, rows)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, ImportError, csv.Error):
        return None
    if not lengths:
        return None
    return lengths, f"the first {len(lengths):,} rows of {os.path.basename(paths[0])}"


@lru_cache(maxsize=32)
def _lengths(kind: str, path: str, mtime: float, columns: tuple[str, ...], options: tuple[tuple[str, Any], ...],
             rows: int) -> tuple[int, ...]:
    kwargs = dict(options)
    if kind == "parquet":
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows, columns=list(columns)), None)
        records: Any = batch.to_pylist() if batch is not None else []
    elif kind == "csv":
        fh = open(path, newline="", encoding=kwargs.get("encoding") or "utf-8")
        with fh:
            sep = kwargs.get("sep") or kwargs.get("delimiter") or ("\t" if path.endswith(".tsv") else ",")
            records = list(islice(csv.DictReader(fh, delimiter=sep, quotechar=kwargs.get("quotechar") or '"'), rows))
    else:
        records = _json_rows(path, kwargs.get("encoding") or "utf-8", rows)
    return tuple(sum(len(str(r[c] or "")) for c in columns) for r in records)


def _json_rows(path: str, encoding: str, rows: int) -> list[dict[str, Any]]:
    with open(path, encoding=encoding) as fh:
        start = fh.read(1)
        while start.isspace():
            start = fh.read(1)
        if start == "[":  # a JSON array of rows: read whole, when small
            if os.path.getsize(path) > MAX_ARRAY_BYTES:
                return []
            fh.seek(0)
            return list(json.load(fh))[:rows]
        fh.seek(0)
        return [json.loads(line) for line in islice((x for x in fh if x.strip()), rows)]
