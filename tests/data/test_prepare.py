"""Preparing rows in Arrow: encoded labels, Parquet channels, content fingerprints, and the prepared-data cache."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from sagefinetune import Dataset, Job, LabelMap
from sagefinetune.entrypoint import channels


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def computed(monkeypatch):
    """How many times rows were really read, checked and encoded (not read back from the cache)."""
    from sagefinetune.data import prepare

    calls = []
    real = prepare._prepare
    monkeypatch.setattr(prepare, "_prepare", lambda job: calls.append(job) or real(job))
    return calls


def frame(rows: int = 200, shift: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"review": [f"review number {i + shift}" for i in range(rows)],
                         "stars": [1 + (i % 5) for i in range(rows)]})


STARS = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}


def test_labels_are_encoded_by_the_map_and_written_as_parquet(cache_dir, tmp_path):
    job = Job.from_dataset(Dataset.from_pandas(frame()).columns(text="review", label="stars")).map_labels(STARS)
    prepared = job.prepare()
    train = prepared.tables["train"]
    assert train.column_names == ["text", "label"] and str(train.schema.field("label").type) == "int64"
    assert set(train["label"].to_pylist()) == {0, 1, 2}
    folders = prepared.write(tmp_path / "channels")
    rows = channels.load_channel(str(folders["test"]))  # what the entry point reads
    assert rows.num_rows == prepared.sizes()["test"] and set(rows.column_names) == {"text", "label"}


def test_a_job_prepared_before_is_read_back_from_the_cache(cache_dir, computed):
    job = Job.from_dataset(Dataset.example("bbc_news").sample(train=300, test=100, seed=3))
    first = job.prepare()
    again = job.prepare()
    assert len(computed) == 1  # read back, not recomputed
    assert again.fingerprint == first.fingerprint and again.sizes() == first.sizes()
    assert again.label_map == first.label_map and again.tables["train"].equals(first.tables["train"])
    other = Job.from_dataset(Dataset.example("bbc_news").sample(train=300, test=100, seed=4)).prepare()
    assert other.fingerprint != first.fingerprint and len(computed) == 2


def test_a_changed_file_is_prepared_again(cache_dir, tmp_path, computed):
    path = tmp_path / "data.csv"
    frame().to_csv(path, index=False)
    job = Job.from_dataset(Dataset.from_csv(path).columns(text="review", label="stars")).map_labels(STARS)
    first = job.prepare()
    job.prepare()
    assert len(computed) == 1
    frame(shift=1).to_csv(path, index=False)
    os.utime(path, ns=(1, 1))  # another content, another modification time
    changed = job.prepare()
    assert len(computed) == 2 and changed.fingerprint != first.fingerprint


def test_filters_are_never_cached(cache_dir, computed):
    job = Job.from_dataset(Dataset.from_pandas(frame()).columns(text="review", label="stars").filter(lambda r: True))
    job.prepare()
    job.prepare()
    assert len(computed) == 2


def test_the_fingerprint_is_of_the_data(cache_dir, monkeypatch):
    def fingerprint(df):
        monkeypatch.setenv("SFT_CACHE_DIR", str(cache_dir / str(id(df))))  # no cache hits across calls
        return Job.from_dataset(Dataset.from_pandas(df).columns(text="review", label="stars")).prepare().fingerprint

    base = fingerprint(frame())
    assert fingerprint(frame()) == base
    edited = frame()
    edited.loc[7, "review"] = "a different review"
    assert fingerprint(edited) != base


def test_multi_label_lists_are_encoded_in_arrow(cache_dir):
    df = pd.DataFrame({"text": [f"t{i}" for i in range(60)],
                       "label": [["toxic"], ["insult", "toxic"], []] * 20})
    prepared = Job.from_dataset(Dataset.from_pandas(df).split(test=0.2)).map_labels(
        LabelMap.multi_label(["toxic", "insult"])).prepare()
    assert set(prepared.tables) == {"train", "test", "validation"}  # a validation split for the threshold
    rows = prepared.tables["train"]["label"].to_pylist()
    assert [0] in rows and [1, 0] in rows and [] in rows


def test_class_names_of_a_classlabel_column_can_key_the_map(cache_dir):
    job = Job.from_dataset(Dataset.example("rotten_tomatoes").sample(train=100, test=40, seed=1)).map_labels(
        {"negative": "bad", "positive": "good"})
    prepared = job.prepare()
    assert prepared.label_map.names_ == ("bad", "good")
    assert set(prepared.tables["test"]["label"].to_pylist()) == {0, 1}
