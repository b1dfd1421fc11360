"""Reading the data for what it says (issue 21.2): a split column honoured, named columns checked against the header
at plan, columns chosen when not named, and a data report at plan and fit."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import sagefinetune as sft
from sagefinetune.plans.hyperparameters import checked_at_fit

LABELS = {0: "negative", 1: "positive"}


def reviews(rows: int = 300) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review {i} of a film " * (1 + i % 4) for i in range(rows)],
                         "label": [i % 2 for i in range(rows)],
                         "split": (["train"] * (rows * 2 // 3) + ["dev"] * (rows // 6)
                                   + ["test"] * (rows - rows * 2 // 3 - rows // 6))})


def write(frame: pd.DataFrame, tmp_path, kind: str) -> sft.Dataset:
    path = tmp_path / f"data.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
        return sft.Dataset.from_csv(str(path), split_column="split")
    if kind == "json":
        frame.to_json(path, orient="records", lines=True)
        return sft.Dataset.from_json(str(path), split_column="split")
    frame.to_parquet(path)
    return sft.Dataset.from_parquet(str(path), split_column="split")


# ---- the split column --------------------------------------------------------------------------------------------
def test_a_named_split_column_makes_the_splits_and_nothing_held_out_is_trained_on():
    frame = reviews()
    loaded = sft.Dataset.from_pandas(frame, split_column="split").load()
    assert {k: len(v) for k, v in loaded.items()} == {"train": 200, "validation": 50, "test": 50}
    test_texts = set(frame[frame.split == "test"].text)
    assert set(loaded["test"]["text"]) == test_texts and not test_texts & set(loaded["train"]["text"])


@pytest.mark.parametrize("kind", ["csv", "json", "parquet"])
def test_files_honour_a_split_column_at_plan_and_at_load(tmp_path, kind):
    ds = write(reviews(), tmp_path, kind)
    job = sft.Job.from_dataset(ds).map_labels(LABELS).hyperparameters(epochs=1, batch_size=20)
    assert job.plan().estimate.train_rows == 200 and job.plan().estimate.steps == 10
    assert {k: len(v) for k, v in ds.load().items()} == {"train": 200, "validation": 50, "test": 50}


def test_a_column_named_split_is_detected_used_and_said_in_one_line(capsys):
    ds = sft.Dataset.from_pandas(reviews())
    plan = sft.Job.from_dataset(ds).map_labels(LABELS).plan()
    said = [n for n in plan.notes if "the column 'split' holds split names" in n]
    assert len(said) == 1 and "train 200, validation 50, test 50" in said[0]
    loaded = ds.load()
    assert sorted(loaded) == ["test", "train", "validation"] and len(loaded["train"]) == 200
    err = capsys.readouterr().err
    assert err.count("the column 'split' holds split names") == 1
    kept = sft.Dataset.from_pandas(reviews(), split_column=False).load()
    assert sorted(kept) == ["test", "train"] and len(kept["train"]) == 270  # the default 10% carve


def test_a_split_column_with_other_values_is_not_detected_and_a_named_one_refuses_them():
    frame = reviews().assign(split=["a", "b", "c"] * 100)
    assert sorted(sft.Dataset.from_pandas(frame).load()) == ["test", "train"]
    with pytest.raises(sft.DataError, match=r"split column 'split' .* not split names: 'a' \(100 rows\).*Fix: use"):
        sft.Dataset.from_pandas(frame, split_column="split").load()
    with pytest.raises(sft.ColumnError, match="split_column='splt' is not a column.*did you mean 'split'"):
        sft.Dataset.from_pandas(frame, split_column="splt").load()
    with pytest.raises(sft.ConfigError, match=r"split_column=\.\.\.\) needs a column name"):
        sft.Dataset.from_pandas(frame, split_column=3)


# ---- columns checked and chosen at plan ---------------------------------------------------------------------------
@pytest.fixture
def sentiment_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(100), "review": [f"a good film, number {i}" if i % 2 else f"dull {i}" for i in range(100)],
                  "sentiment": [i % 2 for i in range(100)]}).to_csv(path, index=False)
    return str(path)


def test_plan_refuses_a_named_column_the_header_lacks_with_did_you_mean(sentiment_csv):
    job = sft.Job.from_dataset(sft.Dataset.from_csv(sentiment_csv).columns(text="review", label="sentimnt"))
    with pytest.raises(sft.ColumnError, match=r"label column 'sentimnt' is not in csv.*did you mean 'sentiment'\?.*"
                                              r"\['id', 'review', 'sentiment'\]. Fix: .columns\(label="):
        job.plan()
    with pytest.raises(sft.ColumnError, match="label column 'label' is not in"):
        sft.Job.from_dataset(sft.Dataset.from_csv(sentiment_csv).columns(label="label")).plan()


def test_columns_not_named_are_chosen_from_the_data_and_the_choice_is_said(sentiment_csv, capsys):
    plan = sft.Job.from_dataset(sft.Dataset.from_csv(sentiment_csv)).plan()
    assert "text='review' label='sentiment'" in plan.dataset
    assert any("columns chosen from the data (label='sentiment', text='review'" in n for n in plan.notes)
    loaded = sft.Dataset.from_csv(sentiment_csv).load()
    assert loaded["train"].column_names == ["text", "label"] and "columns chosen" in capsys.readouterr().err


def test_an_ambiguous_choice_is_refused_naming_the_candidates():
    frame = pd.DataFrame({"title": ["a long title of a film"] * 10 + ["another title here!!"] * 10,
                          "body": ["a body of similar size"] * 20, "stars": [1, 5] * 10})
    with pytest.raises(sft.ColumnError, match=r"cannot choose the text column.*\['body', 'title'\].*Fix: name it"):
        sft.Job.from_dataset(sft.Dataset.from_pandas(frame)).plan()
    both = pd.DataFrame({"text": ["words here"] * 20, "label": [0, 1] * 10, "target": [1, 0] * 10})
    sft.Job.from_dataset(sft.Dataset.from_pandas(both)).plan()  # the defaults are there: nothing to choose
    no_default = both.rename(columns={"label": "class"})
    with pytest.raises(sft.ColumnError, match=r"cannot choose the label column.*\['class', 'target'\]"):
        sft.Job.from_dataset(sft.Dataset.from_pandas(no_default)).plan()


# ---- the data report ----------------------------------------------------------------------------------------------
def duplicated() -> pd.DataFrame:
    train = pd.DataFrame({"text": ["same text", "same text", "other", "", "x" * 3000, "fine"] * 5,
                          "label": [0, 1, 0, 1, 0, 1] * 5})
    test = pd.DataFrame({"text": ["same text", "new one", "fresh"] * 4, "label": [0, 1, 0] * 4})
    return pd.concat([train.assign(split="train"), test.assign(split="test")])


def test_the_plan_reports_rows_labels_texts_and_duplicates_with_a_warning():
    shown = str(sft.Job.from_dataset(sft.Dataset.from_pandas(duplicated())).map_labels(LABELS).plan())
    assert "data report  rows: train 30, test 12" in shown
    assert "labels in train: 0: 15, 1: 15" in shown and "5 empty in train" in shown
    assert "5 longer than 2,048 characters in train" in shown
    assert "duplicates: 25 within train, 4 test rows also in train" in shown
    assert "warning      4 test rows have a text that is also in train" in shown and "Fix:" not in shown


def test_fit_reports_every_row_and_warns_about_texts_in_train_and_test(capsys):
    rows = pd.DataFrame({"text": [f"text {i % 40}" for i in range(100)], "label": [i % 2 for i in range(100)]})
    test = pd.DataFrame({"text": ["text 1", "text 3", "unseen"], "label": [1, 1, 0]})
    job = sft.Job.from_dataset(sft.Dataset.from_pandas({"train": rows, "test": test})).map_labels(LABELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        notes = checked_at_fit(job, job.prepare())
    err = capsys.readouterr().err
    assert "data report: rows: train 100, test 3 (every row, as prepared)" in err
    assert "labels in train: negative: 50, positive: 50" in err and "duplicates: 60 within train, 2 test rows" in err
    assert any(n.startswith("2 test rows have a text that is also in train") and "Fix: drop the duplicates" in n
               for n in notes)
