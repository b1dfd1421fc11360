"""Dataset repositories for the local Hub (tests/hub_server.py): cards with ``configs``, data files, the Amazon copy.

The card is what the Hub shows and 🤗 datasets reads: YAML front matter whose ``configs`` list each config's
``data_files`` per split, and ``dataset_info`` with the features. Files are real Parquet, CSV and JSON Lines.

:func:`serve_amazon_copy` serves a small fake of ``mteb/AmazonReviewsClassification`` shaped like the real one
(Parquet, configs ``de en es fr ja zh``, features ``text`` string and ``label`` int64 0..4 = stars 1..5, splits train,
validation and test) at the revision sagefinetune pins, then moves ``main`` past it, so reading ``main`` instead of the
pin shows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from sagefinetune.data.hub_copies import HUB_COPIES

AMAZON = HUB_COPIES["amazon_reviews_multi"]
SPLITS = ("train", "validation", "test")

# A word for each star rating, and things reviewed, per language: short texts that read like the copy's reviews.
WORDS = {
    "de": (["Schrecklich", "Schlecht", "Okay", "Gut", "Ausgezeichnet"], ["Ladegerät", "Mixer", "Buch", "Kopfhörer"]),
    "en": (["Terrible", "Poor", "Okay", "Good", "Excellent"], ["charger", "blender", "book", "headphones"]),
    "es": (["Terrible", "Malo", "Normal", "Bueno", "Excelente"], ["cargador", "batidora", "libro", "auriculares"]),
    "fr": (["Horrible", "Mauvais", "Correct", "Bien", "Excellent"], ["chargeur", "mixeur", "livre", "casque"]),
    "ja": (["最悪", "悪い", "普通", "良い", "最高"], ["充電器", "ミキサー", "本", "ヘッドホン"]),
    "zh": (["很差", "不好", "一般", "不错", "非常好"], ["充电器", "搅拌机", "书", "耳机"]),
}


def card(configs: Mapping[str, Mapping[str, str]], features: Mapping[str, str] | None = None,
         default: str | None = None, text: str = "A dataset for tests.") -> bytes:
    """A README.md whose front matter declares ``{config: {split: path pattern}}`` (and the features), as the Hub does."""
    meta: dict[str, Any] = {"configs": [
        {"config_name": name, **({"default": True} if name == default else {}),
         "data_files": [{"split": split, "path": path} for split, path in files.items()]}
        for name, files in configs.items()]}
    if features:
        meta["dataset_info"] = [{"config_name": name, "features": [{"name": k, "dtype": v} for k, v in features.items()]}
                                for name in configs]
    return ("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + text + "\n").encode()


def parquet(rows: Mapping[str, Sequence[Any]], types: Mapping[str, str] | None = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(list(v), type=(types or {}).get(k)) for k, v in rows.items()})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def csv_bytes(rows: Mapping[str, Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(rows))
    writer.writerows(zip(*rows.values()))
    return out.getvalue().encode()


def jsonl(rows: Mapping[str, Sequence[Any]]) -> bytes:
    return "".join(json.dumps(dict(zip(rows, values)), ensure_ascii=False) + "\n" for values in zip(*rows.values())).encode()


def reviews(language: str, split: str, n: int) -> dict[str, list[Any]]:
    """``n`` reviews shaped like the copy's rows: ``title\\n\\nbody`` and a label 0..4, each label equally often."""
    words, things = WORDS[language]
    labels = [i % 5 for i in range(n)]
    texts = [f"{words[y]}\n\n{things[i % len(things)]}: {words[y].lower()} ({language} {split} {i})"
             for i, y in enumerate(labels)]
    return {"text": texts, "label": labels}


def serve_amazon_copy(hub: Any, rows: int = 300) -> str:
    """Serve the fake copy at the pinned revision (``rows`` per language and split), then commit a different ``main``
    on top of it; returns the pinned revision."""
    repo = AMAZON.repo
    if hub.record(repo, "dataset") is not None:
        return AMAZON.revision
    files = {"README.md": card({lang: {s: f"{lang}/{s}-*" for s in SPLITS} for lang in AMAZON.configs},
                               {"text": "string", "label": "int64"}, text="Multilingual Amazon reviews (test copy).")}
    for lang in AMAZON.configs:
        for split in SPLITS:
            files[f"{lang}/{split}-00000-of-00001.parquet"] = parquet(reviews(lang, split, rows), {"label": "int64"})
    hub.add_commit(repo, files, oid=AMAZON.revision, message="Parquet copy of amazon_reviews_multi")
    moved = {"label": [0] * 7, "text": [f"newer main {i}" for i in range(7)]}
    hub.add_commit(repo, {"en/train-00000-of-00001.parquet": parquet(moved, {"label": "int64"})}, message="newer rows")
    return AMAZON.revision
