"""Prepared: a Job's checked, label-encoded splits as Arrow tables (or the cached Parquet files), and their hash."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sagefinetune.data.dataset import LABEL, PAIR
from sagefinetune.data.labels import LabelMap
from sagefinetune.entrypoint.contract import DATA_FILE, render_hyperparameter

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

__all__ = ["Prepared", "table_hash"]


@dataclass(frozen=True)
class Prepared:
    """Checked splits with labels encoded as class ids (lists of ids for multi-label), as Arrow tables.

    Attributes:
        label_map: the map the labels were encoded with (inferred from the data when the Job named none).
        text_pair: whether the rows are sentence pairs.
        notes: what loading did differently from what was asked (e.g. a sample larger than its split).
    """

    label_map: LabelMap
    text_pair: bool
    notes: tuple[str, ...] = ()
    _tables: Mapping[str, pa.Table] | None = field(default=None, repr=False)
    _files: Mapping[str, Path] | None = field(default=None, repr=False)  # Parquet files, when read from the cache
    _fingerprint: str | None = field(default=None, repr=False)

    @cached_property
    def tables(self) -> dict[str, pa.Table]:
        """split -> Arrow table with ``text`` (``text_pair``) and ``label`` columns."""
        if self._tables is not None:
            return dict(self._tables)
        import pyarrow.parquet as pq

        assert self._files is not None
        return {split: pq.read_table(path) for split, path in self._files.items()}

    @property
    def splits(self) -> datasets.DatasetDict:
        """The tables as a 🤗 DatasetDict (no copy)."""
        import datasets
        from datasets.table import InMemoryTable

        return datasets.DatasetDict({k: datasets.Dataset(InMemoryTable(t)) for k, t in self.tables.items()})

    def sizes(self) -> dict[str, int]:
        return {k: t.num_rows for k, t in self.tables.items()}

    def class_counts(self, split: str = "train") -> dict[str, int]:
        """Rows per class of ``split``, every class named (multi-label: rows where each label is on)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.tables[split][LABEL]
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = pc.list_flatten(column)
        counts = {int(v["values"].as_py()): int(v["counts"].as_py()) for v in pc.value_counts(column)}
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_map.names_)}

    def write(self, root: str | Path) -> dict[str, Path]:
        """Write each split to ``root/<split>/data.parquet`` (copied as is from the cache); returns split -> folder."""
        import pyarrow.parquet as pq

        out = {}
        splits = self._files or self.tables
        for split in splits:
            folder = Path(root) / split
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (DATA_FILE + ".tmp")
            if self._files is not None:
                shutil.copyfile(self._files[split], tmp)
            else:
                # texts are mostly unique: a dictionary would be built and thrown away for them
                pq.write_table(self.tables[split].combine_chunks(), tmp, use_dictionary=[LABEL])
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
        """A content hash of the Arrow data and the labels: the same data gives the same prefix in S3."""
        if self._fingerprint is not None:
            return self._fingerprint
        digest = hashlib.sha256(json.dumps(self.label_map.to_dict(), sort_keys=True).encode())
        for split in sorted(self.tables):
            digest.update(split.encode())
            digest.update(table_hash(self.tables[split]).encode())
        return digest.hexdigest()[:16]


def table_hash(table: pa.Table) -> str:
    """sha256 of the table's Arrow IPC stream (schema metadata dropped): the data, not a re-serialisation of rows."""
    import pyarrow as pa

    table = table.combine_chunks().replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(memoryview(sink.getvalue())).hexdigest()
