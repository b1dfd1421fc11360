"""The text and label columns checked against what local data holds, at plan time, and chosen when not named.

What is read: the header or schema (:func:`sagefinetune.data.peek.columns_of`) to check names, and only when a
column must be chosen, the first rows (:func:`sagefinetune.data.peek.first_rows`). Hub, ``from_disk`` and
``from_s3`` data are checked when ``fit()`` reads them.

- A column named with ``.columns(...)`` that is not there is a :class:`~sagefinetune.ColumnError` with a did-you-mean.
- A role not named whose default (``text``, ``label``) is not there is chosen, after Ludwig's target detection: the
  label is a column named like a label (:data:`LABEL_NAMES`), else the one column with few distinct values for its
  rows; the text is the column of text with the longest mean length. The plan says what was chosen; two equally good
  candidates are refused, naming them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import ColumnError, did_you_mean

if TYPE_CHECKING:
    from sagefinetune.data.dataset import Dataset

__all__ = ["resolve_columns", "choose_label", "choose_text", "LABEL_NAMES"]

#: Column names that mean "the label" (compared in lower case).
LABEL_NAMES = ("label", "labels", "target", "class", "sentiment", "category", "stars", "rating", "topic", "y")
MAX_CLASSES = 100  # a label column has at most this many distinct values ...
CLASS_SHARE = 0.2  # ... and at most this share of its rows
CLOSE = 0.8  # a second text column at least this share of the longest's mean length makes the choice ambiguous


def resolve_columns(dataset: Dataset) -> tuple[Dataset, str | None]:
    """The Dataset with its columns checked against the data's header (and chosen where not named), and the line that
    says what was chosen (None when nothing was). Raises ColumnError for a named column that is not there."""
    from sagefinetune.data.peek import columns_of, first_rows
    from sagefinetune.data.split_column import SPLIT_COLUMN

    header = columns_of(dataset)
    if not header or "train" not in header:
        return dataset, None
    columns = [c for c in header["train"] if c != (dataset.split_column or SPLIT_COLUMN)]
    roles = {"text": dataset.text, "label": dataset.label, "text_pair": dataset.text_pair}
    for role, column in roles.items():
        if column is not None and column not in header["train"] and (role in dataset.named or role == "text_pair"):
            raise ColumnError(f"the {role} column {column!r} is not in {dataset.source.describe()}"
                              f"{did_you_mean(column, columns) or '.'} The columns are {columns}. Fix: .columns({role}=<one of "
                              "those>).")
    missing = [r for r in ("text", "label") if roles[r] not in header["train"]]
    if not missing:
        return dataset, None
    found = first_rows(dataset)
    rows = found[0] if found is not None else ()
    taken = {c for r, c in roles.items() if c is not None and r not in missing}
    chosen: dict[str, Any] = {}
    if "label" in missing:
        chosen["label"] = choose_label(rows, [c for c in columns if c not in taken], dataset.source.describe())
    if "text" in missing:
        chosen["text"] = choose_text(rows, [c for c in columns if c not in taken | set(chosen.values())],
                                     dataset.source.describe())
    shown = ", ".join(f"{role}={column!r}" for role, column in chosen.items())
    line = (f"columns chosen from the data ({shown}; {'the default' if len(missing) == 1 else 'the defaults'} "
            f"{', '.join(repr(r) for r in missing)} not there): .columns({shown}) names them yourself")
    return dataclasses.replace(dataset, **chosen), line


def _ambiguous(role: str, candidates: Sequence[str], describe: str, why: str) -> ColumnError:
    example = ", ".join(f"{role}={c!r}" for c in candidates[:1])
    return ColumnError(f"cannot choose the {role} column of {describe}: {why}. Fix: name it, e.g. .columns({example}).")


def choose_label(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], describe: str) -> str:
    """The label column: named like a label, else the one with few distinct values for its rows."""
    named = [c for c in columns if c.strip().lower() in LABEL_NAMES]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise _ambiguous("label", named, describe, f"{named} are all named like a label")
    few = [c for c in columns if rows and 1 < len({str(r.get(c)) for r in rows}) <= min(MAX_CLASSES, CLASS_SHARE * len(rows))]
    few = [c for c in few if _mean_length(rows, c) < 40]  # not short texts repeated
    if len(few) == 1:
        return few[0]
    why = (f"{few} all have few distinct values" if few else
           f"no column is named like a label ({', '.join(LABEL_NAMES[:6])}, ...) or has few distinct values; the "
           f"columns are {list(columns)}")
    raise _ambiguous("label", few or list(columns), describe, why)


def choose_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], describe: str) -> str:
    """The text column: the column of text with the longest mean length."""
    texts = sorted(((c, _mean_length(rows, c)) for c in columns if _is_text(rows, c)), key=lambda cl: -cl[1])
    if not texts:
        raise _ambiguous("text", list(columns), describe, f"no column holds text; the columns are {list(columns)}")
    if len(texts) > 1 and texts[1][1] >= CLOSE * texts[0][1]:
        pair = [c for c, _ in texts[:2]]
        raise _ambiguous("text", pair, describe, f"{pair} hold text of about the same mean length "
                         f"({texts[0][1]:.0f} and {texts[1][1]:.0f} characters)")
    return texts[0][0]


def _is_text(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    values = [r.get(column) for r in rows if r.get(column) not in (None, "")]
    if not values:
        return False
    words = sum(1 for v in values if isinstance(v, str) and not _number(v))
    return words >= 0.9 * len(values)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _mean_length(rows: Sequence[Mapping[str, Any]], column: str) -> float:
    return sum(len(str(r.get(column) or "")) for r in rows) / max(1, len(rows))
