"""LabelMap: raw label values -> class names, written into the model config."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sagefinetune.errors import ConfigError, LabelError

__all__ = ["LabelMap"]

SINGLE = "single_label_classification"
MULTI = "multi_label_classification"


def _format_values(counts: Mapping[Any, int], limit: int = 10) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], repr(kv[0])))
    shown = ", ".join(f"{k!r} ({n} row{'s' if n != 1 else ''})" for k, n in items[:limit])
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return shown + more


def _good_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name.strip()) and name.isprintable()


def _check_keys(mapping: Mapping[Hashable, str]) -> None:
    """Raw values that read the same (1, "1" and 1.0 in a CSV) must not name different classes."""
    from sagefinetune.entrypoint.contract import label_key

    seen: dict[str, tuple[Any, str]] = {}
    for key, name in mapping.items():
        if isinstance(key, (list, dict, set)) or key is None:
            raise ConfigError(f"label map key {key!r} is not a raw label value. Fix: keys like 1, 'pos' or 4.0.")
        normal = label_key(key)
        if normal in seen and seen[normal][1] != name:
            other, other_name = seen[normal]
            raise ConfigError(
                f"label map keys {other!r} -> {other_name!r} and {key!r} -> {name!r} read as the same raw value "
                f"{normal!r} (a CSV column holds text, a JSON one numbers). Fix: keep one of them.")
        seen[normal] = (key, name)


@dataclass(frozen=True)
class LabelMap:
    """How raw label values in the data become class names.

    The class names become ``id2label`` / ``label2id`` and ``problem_type`` in the saved model config,
    so predictions carry names, never ``LABEL_0``.

    Args:
        mapping: raw value -> class name. Several raw values may map to one name (many-to-one).
            Class ids follow the order in which names first appear.

    Example:
        >>> lm = LabelMap({1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"})
        >>> lm.names_
        ('negative', 'neutral', 'positive')
        >>> lm.encode(4)
        2
    """

    mapping: Mapping[Hashable, str]
    is_multi_label: bool = False
    names_: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.mapping, Mapping):
            raise ConfigError(
                f"LabelMap needs a mapping of raw value -> class name; got {type(self.mapping).__name__} "
                f"{self.mapping!r}. Fix: LabelMap({{1: 'negative', 5: 'positive'}}) or LabelMap.names([...])."
            )
        if not self.mapping:
            raise ConfigError("LabelMap is empty. Fix: name at least two classes, e.g. LabelMap.names(['neg', 'pos']).")
        bad = {k: v for k, v in self.mapping.items() if not _good_name(v)}
        if bad:
            raise ConfigError(
                f"class names must be printable, non-blank strings; got {bad!r}. "
                "Fix: map each raw value to a name such as 'positive'."
            )
        _check_keys(self.mapping)
        names = tuple(dict.fromkeys(self.mapping.values()))
        if len(names) < 2 and not self.is_multi_label:
            raise ConfigError(
                f"a classifier needs at least two classes; the label map has {list(names)}. "
                "Fix: map the raw values to two or more names."
            )
        object.__setattr__(self, "mapping", MappingProxyType(dict(self.mapping)))
        object.__setattr__(self, "names_", names)

    # constructors -------------------------------------------------------------------------------
    @classmethod
    def names(cls, names: Sequence[str]) -> LabelMap:
        """Raw labels are already ``0..n-1`` (or the names themselves).

        Example:
            >>> LabelMap.names(["negative", "positive"]).encode(1)
            1
        """
        names = cls._check_names(names, "LabelMap.names")
        mapping: dict[Hashable, str] = {i: n for i, n in enumerate(names)}
        mapping.update({n: n for n in names})
        return cls(mapping)

    @classmethod
    def multi_label(cls, names: Sequence[str]) -> LabelMap:
        """Several labels per row: each row's label is a list of names (or of ids ``0..n-1``).

        Example:
            >>> LabelMap.multi_label(["toxic", "insult"]).encode(["insult"])
            [0.0, 1.0]
        """
        names = cls._check_names(names, "LabelMap.multi_label", minimum=1)
        mapping: dict[Hashable, str] = {i: n for i, n in enumerate(names)}
        mapping.update({n: n for n in names})
        return cls(mapping, is_multi_label=True)

    @classmethod
    def infer(cls, values: Iterable[Any], class_names: Sequence[str] | None = None) -> LabelMap:
        """Build a label map from the values found in the data (sorted), or from a ClassLabel's names."""
        if class_names:
            return cls.names(list(class_names))
        seen: set[Any] = set()
        multi = False
        for v in values:
            if isinstance(v, (list, tuple)):
                multi = True
                seen.update(v)
            elif v is not None:
                seen.add(v)
        kinds = sorted({"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
                        for v in seen})
        if len(kinds) > 1:
            sample = sorted(seen, key=repr)[:6]
            raise LabelError(
                f"the label column mixes value types ({', '.join(kinds)}): {sample}. A label map cannot tell whether "
                "1 and '1' are one class. Fix: make the column one type, or name the classes with .map_labels({...})."
            )
        ordered = sorted(seen)
        if multi:
            return cls.multi_label([str(v) for v in ordered])
        if len(ordered) < 2:
            raise LabelError(
                f"the label column holds {len(ordered)} distinct value(s) {ordered!r}; a classifier needs at least two. "
                "Fix: check the label column, or sample more rows."
            )
        return cls({v: str(v) for v in ordered})

    @staticmethod
    def _check_names(names: Sequence[str], where: str, minimum: int = 2) -> list[str]:
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ConfigError(f"{where} needs a list of class names; got {names!r}. Fix: {where}(['negative', 'positive']).")
        names = list(names)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{where}: class names repeat: {dupes}. Fix: give each class one name.")
        if len(names) < minimum:
            raise ConfigError(f"{where} needs at least {minimum} class names; got {names!r}.")
        return names

    # what the model config gets -------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return len(self.names_)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names_))

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names_)}

    @property
    def problem_type(self) -> str:
        return MULTI if self.is_multi_label else SINGLE

    def to_dict(self) -> dict[str, Any]:
        """What the entry point reads: class names in id order and the problem type."""
        return {"labels": list(self.names_), "problem_type": self.problem_type}

    # encoding -----------------------------------------------------------------------------------
    def _lookup(self, value: Any) -> str | None:
        if isinstance(value, bool):
            return self.mapping.get(value)
        if value in self.mapping:
            return self.mapping[value]
        # 4.0 in a float column for a map keyed by ints, or "4" read from a CSV for a map keyed by ints
        if isinstance(value, float) and value.is_integer() and int(value) in self.mapping:
            return self.mapping[int(value)]
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and int(value) in self.mapping:
            return self.mapping[int(value)]
        return None

    def rows_with_lists(self, values: Iterable[Any]) -> int:
        """How many values are lists (multi-label rows)."""
        return sum(1 for v in values if isinstance(v, (list, tuple)))

    def encode_multi(self, value: Any) -> list[float]:
        """The multi-hot vector of a row's labels (a list of raw values or names)."""
        items = value if isinstance(value, (list, tuple)) else [value]
        hot = [0.0] * self.num_labels
        for item in items:
            name = self._lookup(item)
            if name is None:
                raise LabelError(f"label value {item!r} is not in the label map {self._short()}.")
            hot[self.label2id[name]] = 1.0
        return hot

    def encode(self, value: Any) -> int | list[float]:
        """Class id of a raw value (single-label) or a multi-hot vector (multi-label)."""
        if self.is_multi_label:
            return self.encode_multi(value)
        name = self._lookup(value)
        if name is None:
            raise LabelError(f"label value {value!r} is not in the label map {self._short()}.")
        return self.label2id[name]

    # Arrow columns: a lookup per distinct value, then vectorised ------------------------------------------------
    def ids_of(self, distinct: Iterable[Any]) -> list[int | None]:
        """The class id of each distinct raw value (None for values the map does not cover)."""
        return [None if (name := self._lookup(v)) is None else self.label2id[name] for v in distinct]

    def encode_arrow(self, column: Any) -> Any:
        """Class ids of an Arrow label column (int64), or lists of ids for multi-label list columns.

        Only the distinct values go through Python, so a million rows take milliseconds.
        Raises :class:`LabelError` for values the map does not cover.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        is_list = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
        flat = pc.list_flatten(column) if is_list else column
        distinct = pc.unique(flat)
        ids = pc.take(pa.array(self.ids_of(distinct.to_pylist()), pa.int64()), pc.index_in(flat, value_set=distinct))
        if ids.null_count:
            self.check_arrow({"data": column})  # raises with every uncovered value and its row count
        if not is_list:
            return ids
        return pa.ListArray.from_arrays(pc.subtract(column.offsets, column.offsets[0]), ids)

    def uncovered(self, values: Iterable[Any]) -> Counter[Any]:
        """The values the map does not cover, with their row counts."""
        missing: Counter[Any] = Counter()
        for v in values:
            items = v if isinstance(v, (list, tuple)) else [v]
            for item in items:
                if item is None or self._lookup(item) is None:
                    missing[item] += 1
        return missing

    def check(self, values: Iterable[Any], split: str = "data") -> None:
        """Raise :class:`LabelError` listing every value the map does not cover, with its row count."""
        self.check_splits({split: values})

    def check_splits(self, splits: Mapping[str, Iterable[Any]]) -> None:
        """Like :meth:`check`, for several splits at once: the error counts every split that has such values."""
        counts = {}
        for split, values in splits.items():
            values = list(values)
            self._check_shape(split, self.rows_with_lists(values))
            counts[split] = self.uncovered(values)
        self._raise_uncovered(counts)

    def check_arrow(self, columns: Mapping[str, Any]) -> None:
        """:meth:`check_splits` for Arrow label columns: value counts are computed by Arrow, not row by row."""
        import pyarrow as pa
        import pyarrow.compute as pc

        counts = {}
        for split, column in columns.items():
            is_list = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            self._check_shape(split, len(column) - column.null_count if is_list else 0)
            flat = pc.list_flatten(column) if is_list else column
            tally = pc.value_counts(flat).to_pylist()
            counts[split] = Counter({t["values"]: t["counts"] for t in tally if self._lookup(t["values"]) is None})
        self._raise_uncovered(counts)

    def check_raw_counts(self, counts: Mapping[str, Mapping[Any, int]]) -> None:
        """:meth:`check_splits` for raw values counted elsewhere (``from_s3`` files read before launch), matched as
        the entry point matches them: by their text (``contract.label_key``: 5, 5.0 and "5" are "5")."""
        from sagefinetune.entrypoint.contract import label_key

        keys = {label_key(k) for k in self.mapping}
        self._raise_uncovered({split: Counter({v: n for v, n in c.items() if v is None or label_key(v) not in keys})
                               for split, c in counts.items()})

    def _check_shape(self, split: str, lists: int) -> None:
        if lists and not self.is_multi_label:
            raise LabelError(
                f"{lists} row(s) of the {split} split hold lists of labels (multi-label data), but the label map "
                f"{self._short()} is single-label. Fix: .map_labels(LabelMap.multi_label([...names...])).")

    def _raise_uncovered(self, counts: Mapping[str, Counter[Any]]) -> None:
        problems = [f"the {split} split: {_format_values(missing)}" for split, missing in counts.items() if missing]
        if problems:
            rows = sum(sum(m.values()) for m in counts.values())
            fix = (self._type_mismatch([v for m in counts.values() for v in m])
                   or "Fix: add them to the map (.map_labels({...})) or drop those rows before training.")
            raise LabelError(
                f"label values are not in the label map {self._short()}: {'; '.join(problems)}; "
                f"{rows} row{'s' if rows != 1 else ''} in all. {fix}"
            )

    def _type_mismatch(self, values: list[Any]) -> str | None:
        """When the values would match keys of another type (the integer 1, the key '1'), say so and show both."""
        from sagefinetune.entrypoint.contract import label_key

        by_text = {label_key(k): k for k in self.mapping}
        found = sorted({v for v in values if v is not None and label_key(v) in by_text}, key=repr)
        pairs = [(v, by_text[label_key(v)]) for v in found]
        if not pairs:
            return None
        value, key = pairs[0]
        fixed = {v: self.mapping[k] for v, k in pairs[:4]}
        return (f"The types differ: the data holds {type(value).__name__} values such as {value!r}, the label map "
                f"has {type(key).__name__} keys such as {key!r}, and {value!r} != {key!r}. Fix: key the map as the "
                f"data holds the values: .map_labels({fixed!r}{' + the others' if len(pairs) > 4 else ''}), or "
                "convert the column first.")

    def _short(self) -> str:
        keys = [k for k in self.mapping if not (isinstance(k, str) and k in self.names_)] or list(self.mapping)
        if keys and all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
            ks: list[int] = sorted(k for k in keys if isinstance(k, int))
            if ks == list(range(ks[0], ks[-1] + 1)) and len(ks) > 2:
                return f"{{{ks[0]}..{ks[-1]}}}"
        return "{" + ", ".join(repr(k) for k in keys[:12]) + (", ..." if len(keys) > 12 else "") + "}"

    def __repr__(self) -> str:
        kind = "multi_label" if self.is_multi_label else "single_label"
        return f"LabelMap<{kind}: {self._short()} -> {list(self.names_)}>"
