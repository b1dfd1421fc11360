"""Turn a Job's Dataset into checked, label-encoded splits, and write them as data channels.

Everything here runs in Arrow (pyarrow compute on whole columns): a million short rows are checked, encoded,
fingerprinted and written as Parquet in seconds, and only the distinct label values go through Python. A Job
prepared before (same files, settings and label map) is read back from the cache (see :mod:`sagefinetune.data.cache`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sagefinetune.data.dataset import LABEL, PAIR, ROW, TEXT
from sagefinetune.data.labels import LabelMap
from sagefinetune.data.prepared import Prepared
from sagefinetune.errors import DataError, LabelError

if TYPE_CHECKING:
    import pyarrow as pa

    from sagefinetune.job import Job

VALIDATION_FRACTION = 0.1
TEXT_TYPES = ("string", "large_string", "null")


def prepare(job: Job) -> Prepared:
    """Load, check and encode the Job's rows, or read them back from the cache when this Job was prepared before."""
    from sagefinetune.data import cache

    found = cache.load(job)
    if found is not None:
        return found
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the work takes seconds; its bars would drown the training bar
    try:
        prepared = _prepare(job)
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    return cache.save(job, prepared) or prepared  # the cached copy: writing channels is then a file copy


def _prepare(job: Job) -> Prepared:
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc

    dd, notes = job.dataset.load_with_rows()
    feature = dd["train"].features.get(LABEL)
    class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    tables = {split: arrow_table(part) for split, part in dd.items()}
    label_map = job.label_map
    if label_map is not None and class_names and all(isinstance(k, str) for k in label_map.mapping):
        # the map names the ClassLabel's names ("pos"), the column holds ids: compare names with names
        names = pa.array(class_names)
        tables = {k: t.set_column(t.schema.get_field_index(LABEL), LABEL, pc.take(names, t[LABEL])) for k, t in tables.items()}
    if label_map is None:
        label_map = infer_labels(tables["train"][LABEL], class_names)
    label_map.check_arrow({split: t[LABEL] for split, t in tables.items()})
    for split, table in tables.items():
        check_texts(table, split, job.dataset)
    encoded = {split: _encode(table, label_map) for split, table in tables.items()}
    _check_classes_in_train(encoded["train"], label_map)
    if "validation" not in encoded and (label_map.is_multi_label or carves_validation(job)):
        encoded["train"], encoded["validation"] = _carve_validation(encoded["train"], label_map.is_multi_label)
        if carves_validation(job):
            notes = [*notes, f"early_stopping: the data has no validation split, so {encoded['validation'].num_rows} "
                             f"rows ({VALIDATION_FRACTION:.0%} of train, stratified, seed 42) were set aside as one for "
                             "early stopping to watch; the test split stays unseen until the final score. "
                             "Dataset.split(validation=...) chooses another share"]
    return Prepared(label_map, PAIR in tables["train"].column_names, tuple(notes), _tables=encoded)


def carves_validation(job: Job) -> bool:
    """Whether a Job without a validation split gets one carved from train for ``early_stopping`` to watch
    (multi-label rows always get one: their decision threshold is chosen on it)."""
    return bool(job.hyperparameters_.get("early_stopping"))


def arrow_table(part: Any) -> pa.Table:
    """A 🤗 Dataset's rows as one Arrow table, its indices mapping (from shuffle/select) applied in one ``take``.

    ``with_format("arrow")[:]`` gathers row by row and returns one chunk per row: slow to build, compute on and write.
    """
    table = getattr(getattr(part, "data", None), "table", None)
    indices = getattr(part, "_indices", None)
    if table is None:
        return part.with_format("arrow")[:].combine_chunks()
    if indices is not None:
        table = table.take(indices.column(0))
    return table.combine_chunks()


def infer_labels(column: Any, class_names: list[str] | None) -> LabelMap:
    """The label map of a column whose classes were not named: its distinct values (sorted) or ClassLabel names."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if class_names:
        return LabelMap.names(class_names)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return LabelMap.infer([pc.unique(pc.list_flatten(column)).to_pylist()])
    return LabelMap.infer(pc.unique(column).to_pylist())


def check_texts(table: pa.Table, split: str, dataset: Any) -> None:
    """The text column(s) hold text, and no row's text is empty; errors name the row in the user's data."""
    import pyarrow.compute as pc

    for role, column in ((TEXT, dataset.text), (PAIR, dataset.text_pair)):
        if role not in table.column_names:
            continue
        values = table[role]
        if str(values.type) == "null":  # every value is missing
            values = values.cast("string")
        if str(values.type) not in TEXT_TYPES:
            raise DataError(
                f"the {role} column {column!r} holds {values.type} values (e.g. {values[0].as_py()!r}), not text. "
                f"Fix: .columns({role}=<the column that holds the text>), or convert it to strings first."
            )
        blank = pc.fill_null(pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_trim_whitespace(values), "")), True)
        where = pc.indices_nonzero(blank)
        if len(where):
            first = table[ROW][where[0].as_py()].as_py()
            raise DataError(
                f"{len(where)} row(s) of the {split} split have an empty {role} ({column!r}); the first is row "
                f"{first} of that split as loaded (counting from 0, before any split or sample). Fix: drop them, e.g. "
                f"Dataset.filter(lambda row: bool(row[{role!r}]))."
            )


def _encode(table: pa.Table, label_map: LabelMap) -> pa.Table:
    import pyarrow as pa

    columns = {TEXT: table[TEXT]}
    if PAIR in table.column_names:
        columns[PAIR] = table[PAIR]
    columns[LABEL] = label_map.encode_arrow(table[LABEL])
    return pa.table(columns)


def _check_classes_in_train(train: pa.Table, label_map: LabelMap) -> None:
    import pyarrow.compute as pc

    if label_map.is_multi_label:
        return
    present = set(pc.unique(train[LABEL]).to_pylist())
    missing = [n for i, n in enumerate(label_map.names_) if i not in present]
    if missing:
        raise LabelError(
            f"classes {missing} have no rows in the train split; the model could never predict them. "
            "Fix: sample more rows, or remove them from the label map."
        )


def _carve_validation(train: pa.Table, multi_label: bool) -> tuple[pa.Table, pa.Table]:
    """A validation split of 10% of train, seeded: multi-label rows need one to choose the decision threshold, early
    stopping one to watch. Single-label rows are stratified by class."""
    import numpy as np

    from sagefinetune.data.splits import carve

    codes = (np.zeros(train.num_rows, dtype=np.int64) if multi_label
             else np.asarray(train[LABEL].to_numpy(zero_copy_only=False), dtype=np.int64))
    taken, rest = carve(codes, VALIDATION_FRACTION, 42, split="validation", default=True)
    return train.take(rest), train.take(taken)
