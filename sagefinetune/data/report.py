"""A short report on the rows before any training: rows per split, label counts, empty and very long texts, and
duplicated texts within train and across train and test.

At ``plan()`` it covers what is cheap to read (a DataFrame's rows; a local file's first 2,000 rows, and says so); at
``fit()`` every prepared row. Texts are compared as they are (the text and its pair together). A text in both train and
test gets a warning with the count and the fix: the test score then partly measures memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagefinetune.data.dataset import Dataset

__all__ = ["DataReport", "report_rows", "plan_report", "LONG_CHARS"]

LONG_CHARS = 4 * 512  # about 512 tokens: longer texts lose tokens at any encoder's maximum


@dataclass(frozen=True)
class DataReport:
    """What the rows hold (see the module docstring).

    Attributes:
        rows: rows per split. labels: ``{split: {label: rows}}``. empty / long: texts empty or over
        :data:`LONG_CHARS` characters, per split. duplicates: train rows whose text is an earlier train row's.
        across: test rows whose text is also in train. basis: what was read.
    """

    rows: Mapping[str, int]
    labels: Mapping[str, Mapping[Any, int]] = field(default_factory=dict)
    empty: Mapping[str, int] = field(default_factory=dict)
    long: Mapping[str, int] = field(default_factory=dict)
    duplicates: int = 0
    across: int = 0
    basis: str = ""

    def lines(self) -> list[str]:
        """The report in a few lines."""
        out = [f"rows: {', '.join(f'{k} {n:,}' for k, n in self.rows.items())} ({self.basis})"]
        for split, counts in self.labels.items():
            shown = ", ".join(f"{k}: {n:,}" for k, n in list(counts.items())[:8]) + (", ..." if len(counts) > 8 else "")
            out.append(f"labels in {split}: {shown}")
        texts = [f"{n:,} empty in {k}" for k, n in self.empty.items() if n]
        texts += [f"{n:,} longer than {LONG_CHARS:,} characters in {k}" for k, n in self.long.items() if n]
        out.append("texts: " + ("; ".join(texts) if texts else "none empty, none longer than "
                                f"{LONG_CHARS:,} characters"))
        out.append(f"duplicates: {self.duplicates:,} within train, {self.across:,} test rows also in train")
        return out

    def warnings(self, plan: bool = False) -> list[str]:
        """A warning for texts both in train and in test, with the count and the fix (in a plan: in plain words)."""
        if not self.across:
            return []
        fix = ("Fix: drop the duplicates before the data is split" if not plan else
               "Dropping the duplicates before the data is split avoids it")
        return [f"{self.across:,} test rows have a text that is also in train ({self.basis}); the test score then "
                f"partly measures memory. {fix} (pandas: df.drop_duplicates(subset=['text'])), or remove them from "
                "your test data"]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": dict(self.rows), "labels": {k: {str(a): b for a, b in v.items()} for k, v in self.labels.items()},
                "empty": dict(self.empty), "long": dict(self.long), "duplicates": self.duplicates,
                "across": self.across, "basis": self.basis}


def report_rows(texts: Mapping[str, Sequence[Any]], labels: Mapping[str, Sequence[Any]], basis: str,
                rows: Mapping[str, int] | None = None, label_names: Sequence[str] | None = None) -> DataReport:
    """The report of ``{split: texts}`` and ``{split: labels}`` (``rows``: the split sizes when the texts are a sample;
    ``label_names``: names of label ids)."""
    def name(value: Any) -> Any:
        return label_names[value] if label_names is not None and isinstance(value, int) else value

    counts = {}
    for split, values in labels.items():
        c: Counter[Any] = Counter()
        for v in values:
            c.update(name(x) for x in (v if isinstance(v, list) else [v]))
        counts[split] = dict(c.most_common())
    strings = {k: ["" if t is None else str(t) for t in v] for k, v in texts.items()}
    train = strings.get("train", [])
    seen = set(train)
    return DataReport(
        rows=dict(rows) if rows is not None else {k: len(v) for k, v in strings.items()},
        labels=counts,
        empty={k: sum(1 for t in v if not t.strip()) for k, v in strings.items()},
        long={k: sum(1 for t in v if len(t) > LONG_CHARS) for k, v in strings.items()},
        duplicates=len(train) - len(seen),
        across=sum(1 for t in strings.get("test", []) if t in seen),
        basis=basis,
    )


def plan_report(dataset: Dataset) -> DataReport | None:
    """The report at plan time, on what is cheap to read: the first rows of a DataFrame's or local file's splits
    (split by its split column, when one applies); None for data not read before launch."""
    from sagefinetune.data.peek import ROWS, first_rows
    from sagefinetune.data.split_column import SPLIT_COLUMN, plan_split_rows, split_of

    if dataset.source.kind not in ("pandas", "csv", "json", "parquet"):
        return None
    parts: dict[str, list[Mapping[str, Any]]] = {}
    for split in ("train", "validation", "test"):
        found = first_rows(dataset, split)
        if found is not None:
            parts[split] = list(found[0])
    if "train" not in parts or dataset.text not in parts["train"][0] or dataset.label not in parts["train"][0]:
        return None
    if plan_split_rows(dataset) is not None:
        column = dataset.split_column if isinstance(dataset.split_column, str) else SPLIT_COLUMN
        rows, parts = parts["train"], {}
        for row in rows:
            parts.setdefault(str(split_of(row[column])), []).append(row)

    def text(row: Mapping[str, Any]) -> str:
        return " ".join(str(row.get(c) or "") for c in (dataset.text, dataset.text_pair) if c)

    read = sum(len(v) for v in parts.values())
    what = "DataFrame" if dataset.source.kind == "pandas" else "file"
    basis = (f"the first {ROWS:,} rows of each {what}" if read >= ROWS else
             f"all {read:,} rows, read before launch and before any split is carved")
    return report_rows({k: [text(r) for r in v] for k, v in parts.items()},
                       {k: [r.get(dataset.label) for r in v] for k, v in parts.items()}, basis)
