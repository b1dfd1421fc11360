"""The label column of ``from_s3`` data, read before the training job starts, so that a label the map does not cover
is found here and not inside the paid job.

Each channel's data files (the kind the entry point will read: JSON Lines, else Parquet, else CSV) are read with
byte-range GETs: a small file whole, a large one as a few ranges spread over it (whole lines only), at most
:data:`BUDGET` bytes a channel. The values are counted and matched as the entry point matches them
(:meth:`LabelMap.check_raw_counts`), and an uncovered value stops the fit with the same message as local data, plus
what was read.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.errors import LabelError

WHOLE = 4 << 20  # a file this size or smaller is read whole
RANGES = 4  # a larger file: this many ranges spread over it ...
RANGE = 256 << 10  # ... of this many bytes each
BUDGET = 16 << 20  # bytes read per channel, at most
KINDS = ((".jsonl", ".json"), (".parquet",), (".csv",))  # the entry point reads the first kind a channel holds


def check_remote_labels(s3: Any, channels: Mapping[str, str], label: str, label_map: Any) -> None:
    """Raise :class:`LabelError` when a channel's label column holds values ``label_map`` does not cover."""
    counts: dict[str, Counter[Any]] = {}
    read: list[str] = []
    for split, uri in channels.items():
        counts[split], what = channel_labels(s3, uri, label)
        read.append(f"{split}: {what}")
    try:
        label_map.check_raw_counts(counts)
    except LabelError as exc:
        raise LabelError(f"{exc} (Read from S3 before the job started: {'; '.join(read)}.)") from None


def channel_labels(s3: Any, uri: str, label: str) -> tuple[Counter[Any], str]:
    """The label values of one channel's files, counted; and what was read, in words."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    with aws_errors(f"ListObjectsV2 {uri}"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = [o for page in pages for o in page.get("Contents", [])]
    kind = next((k for k in KINDS if any(o["Key"].endswith(k) for o in objects)), None)
    files = sorted((o for o in objects if kind and o["Key"].endswith(kind)), key=lambda o: o["Key"])
    counts: Counter[Any] = Counter()
    spent = sampled = 0
    for n, obj in enumerate(files):
        if spent >= BUDGET:
            return counts, f"{n} of {len(files)} files ({sampled} sampled), {counts.total()} rows"
        values, size, whole = file_labels(s3, bucket, obj["Key"], int(obj["Size"]), label)
        counts.update(values)
        spent += size
        sampled += not whole
    return counts, f"{len(files)} file(s) ({sampled} sampled), {counts.total()} rows"


def file_labels(s3: Any, bucket: str, key: str, size: int, label: str) -> tuple[list[Any], int, bool]:
    """(label values, bytes read, whether the whole file was read) of one data file."""
    if key.endswith(".parquet"):
        return _parquet_labels(s3, bucket, key, size, label)
    if size <= WHOLE:
        text = _get(s3, bucket, key, 0, size).decode("utf-8", "replace")
        return _text_labels(key, [text], label), size, True
    starts = [size * i // RANGES for i in range(RANGES)]
    chunks = [_get(s3, bucket, key, start, min(size, start + RANGE)).decode("utf-8", "replace") for start in starts]
    head = chunks[0].partition("\n")[0] + "\n" if key.endswith(".csv") else ""
    whole_lines = [_whole_lines(chunk, first=i == 0, last=starts[i] + RANGE >= size) for i, chunk in enumerate(chunks)]
    return _text_labels(key, [whole_lines[0]] + [head + c for c in whole_lines[1:]], label), RANGES * RANGE, False


def _get(s3: Any, bucket: str, key: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of an object: one ranged GET."""
    if end <= start:
        return b""
    with aws_errors(f"GetObject s3://{bucket}/{key}"):
        return bytes(s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"].read())


def _whole_lines(chunk: str, *, first: bool, last: bool) -> str:
    """The complete lines of a range: the part before its first newline (unless it starts the file) and after its
    last (unless it ends the file) belong to lines that other bytes finish."""
    if not first:
        chunk = chunk.partition("\n")[2]
    if not last:
        chunk = chunk.rpartition("\n")[0]
    return chunk


def _text_labels(key: str, texts: list[str], label: str) -> list[Any]:
    values: list[Any] = []
    for text in texts:
        if key.endswith(".csv"):
            values += _csv_labels(text, label)
        elif text.lstrip().startswith("["):  # a JSON array of rows (read whole only)
            rows = json.loads(text)
            values += [r.get(label) for r in rows if isinstance(r, dict)]
        else:  # JSON Lines, or the rows of a large JSON array sampled line by line
            rows = (_json_row(line) for line in text.splitlines())
            values += [row.get(label) for row in rows if row is not None]
    return [item for v in values for item in (v if isinstance(v, list) else [v])]


def _json_row(line: str) -> dict[str, Any] | None:
    """One row of JSON Lines (or one row a line of a JSON array); None for anything else (brackets, blank lines)."""
    try:
        row = json.loads(line.strip().rstrip(","))
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _csv_labels(text: str, label: str) -> list[Any]:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    if label not in header:
        return []  # the columns check names a missing column
    at = header.index(label)
    return [_csv_value(row[at]) for row in rows if len(row) == len(header)]


def _csv_value(text: str) -> Any:
    """The value pandas would read (the entry point loads CSV through datasets, i.e. pandas): int, float, bool or text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"": None, "true": True, "false": False}.get(text.strip().lower(), text)


def _parquet_labels(s3: Any, bucket: str, key: str, size: int, label: str) -> tuple[list[Any], int, bool]:
    """The label column of a Parquet file: whole when small, else a few row groups (the footer says where)."""
    import pyarrow.parquet as pq

    source = _RangeFile(s3, bucket, key, size)
    parquet = pq.ParquetFile(source)
    if label not in parquet.schema_arrow.names:
        return [], source.spent, True
    groups = list(range(parquet.num_row_groups))
    if size > WHOLE:
        groups = sorted({groups[len(groups) * i // RANGES] for i in range(RANGES)}) if groups else []
    values = [v for g in groups for v in parquet.read_row_group(g, columns=[label]).column(0).to_pylist()]
    flat = [item for v in values for item in (v if isinstance(v, list) else [v])]
    return flat, source.spent, len(groups) == parquet.num_row_groups


class _RangeFile(io.RawIOBase):
    """A read-only, seekable view of an S3 object that fetches only the ranges read (Parquet's footer and chunks)."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.position = self.spent = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.position + n)
        data = _get(self.s3, self.bucket, self.key, self.position, end)
        self.position += len(data)
        self.spent += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
