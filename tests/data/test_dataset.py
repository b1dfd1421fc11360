import json

import pytest

from sagefinetune import ColumnError, ConfigError, DataError, Dataset, DatasetUnavailableError


@pytest.fixture
def reviews_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = ["review_body,stars,lang"] + [f'"review number {i} was {"great" if i % 2 else "awful"}",{1 + i % 5},en'
                                          for i in range(50)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_builders_return_new_objects(reviews_csv):
    base = Dataset.from_csv(reviews_csv)
    named = base.columns(text="review_body", label="stars")
    sampled = named.sample(train=10, seed=1)
    assert (base.text, named.text) == ("text", "review_body")
    assert base.sample_spec == () and named.sample_spec == ()
    assert dict(sampled.sample_spec) == {"train": 10, "seed": 1}
    with pytest.raises(AttributeError):
        named.text = "x"  # type: ignore[misc]


def test_csv_loads_renames_and_splits_when_there_is_no_test_split(reviews_csv):
    dd = Dataset.from_csv(reviews_csv).columns(text="review_body", label="stars").load()
    assert set(dd) == {"train", "test"}
    assert dd["train"].column_names == ["text", "label"]
    assert len(dd["train"]) + len(dd["test"]) == 50 and len(dd["test"]) == 5


def test_missing_column_lists_the_columns_that_exist(reviews_csv):
    with pytest.raises(ColumnError) as err:
        Dataset.from_csv(reviews_csv).columns(text="review", label="stars").load()
    msg = str(err.value)
    assert "'review'" in msg and "['review_body', 'stars', 'lang']" in msg and "did you mean 'review_body'" in msg
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)


def test_stratified_split_keeps_label_shares():
    import pandas as pd

    df = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "label": [0] * 80 + [1] * 20})
    dd = Dataset.from_pandas(df).split(test=0.2, validation=0.1, seed=3).load()
    assert len(dd["test"]) == 20 and sum(dd["test"]["label"]) == 4
    assert len(dd["validation"]) == 8 and sum(dd["validation"]["label"]) == 2
    assert len(dd["train"]) == 72
    again = Dataset.from_pandas(df).split(test=0.2, validation=0.1, seed=3).load()
    assert list(again["test"]["text"]) == list(dd["test"]["text"])


def test_split_refuses_a_second_test_split():
    import pandas as pd

    frames = {"train": pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}), "test": pd.DataFrame({"text": ["c"], "label": [1]})}
    with pytest.raises(ConfigError, match="already has a test split"):
        Dataset.from_pandas(frames).split(test=0.5).load()


def test_sample_is_seeded_and_bounded():
    ds = Dataset.example("rotten_tomatoes").sample(train=100, test=30, seed=5)
    a, b = ds.load(), ds.load()
    assert len(a["train"]) == 100 and len(a["test"]) == 30
    assert list(a["train"]["text"]) == list(b["train"]["text"])
    assert list(Dataset.example("rotten_tomatoes").sample(train=100, seed=6).load()["train"]["text"]) != list(a["train"]["text"])


@pytest.mark.parametrize("name, classes, total", [("imdb", 2, 25000), ("rotten_tomatoes", 2, 8530), ("bbc_news", 5, 2225)])
def test_bundled_examples_are_real_labelled_text(name, classes, total):
    dd = Dataset.example(name).load()
    assert len(dd["train"]) + len(dd["test"]) == total
    assert len(dd["train"].features["label"].names) == classes
    assert "<br />" not in dd["train"][0]["text"]


def test_unknown_example_suggests_the_close_name():
    with pytest.raises(ConfigError, match="did you mean 'bbc_news'"):
        Dataset.example("bbc-news")


def test_json_parquet_and_disk_sources(tmp_path):
    import datasets

    rows = [{"body": f"text {i}", "y": i % 2} for i in range(20)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    for source in (Dataset.from_json(tmp_path / "d.jsonl"), Dataset.from_parquet(tmp_path / "d.parquet"),
                   Dataset.from_disk(tmp_path / "saved")):
        dd = source.columns(text="body", label="y").load()
        assert len(dd["train"]) == 18 and len(dd["test"]) == 2


def test_files_with_named_splits(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\na,0\nb,1\nc,0\n")
    (tmp_path / "b.csv").write_text("text,label\nd,1\n")
    dd = Dataset.from_csv({"train": tmp_path / "a.csv", "test": tmp_path / "b.csv"}).load()
    assert (len(dd["train"]), len(dd["test"])) == (3, 1)


def test_missing_file_fails_at_the_builder(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        Dataset.from_csv(tmp_path / "nope.csv")


def test_empty_split_is_an_error(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\na,0\nb,1\nc,0\n")
    (tmp_path / "b.csv").write_text("text,label\nd,1\n")
    with pytest.raises(DataError, match="filters removed every row of the test split"):
        Dataset.from_csv({"train": tmp_path / "a.csv", "test": tmp_path / "b.csv"}).filter(lambda r: r["text"] != "d").load()


def test_withdrawn_hub_dataset_resolves_to_its_copy_and_offline_says_so():
    with pytest.raises(DatasetUnavailableError) as err:  # tests/data/test_hub_data.py reads it from a local Hub
        Dataset.from_hub("amazon_reviews_multi", "en").load()
    message = str(err.value)
    assert "could not load 'mteb/AmazonReviewsClassification' (config 'en') at revision '6b5d328e" in message
    assert "HF_HUB_OFFLINE is set" in message and "from_csv" in message


def test_unreachable_hub_dataset_is_a_clear_error():
    with pytest.raises(DatasetUnavailableError, match="could not load 'someone/no-such-dataset'.*HF_HUB_OFFLINE is set"):
        Dataset.from_hub("someone/no-such-dataset").load()


def test_label_counts_and_plot(tmp_path):
    ds = Dataset.example("bbc_news").sample(train=200, test=50, seed=0)
    counts = ds.label_counts()
    assert set(counts) == {"train", "test"} and sum(counts["train"].values()) == 200
    assert list(counts["train"]) == ["business", "entertainment", "politics", "sports", "tech"]
    out = tmp_path / "labels.png"
    fig = ds.plot_labels(out)
    assert out.stat().st_size > 1000 and len(fig.axes[0].patches) == 10


def test_repr_is_compact():
    ds = Dataset.from_hub("stanfordnlp/imdb").columns(text="text", label="label").sample(train=5, seed=1)
    assert repr(ds) == "Dataset<hub('stanfordnlp/imdb') text='text' label='label' sample(train=5, seed=1)>"


def test_label_counts_of_raw_values_sort_numerically():
    import pandas as pd

    df = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [10, 2, 1] * 10})
    counts = Dataset.from_pandas(df).split(test=0.2, seed=0).label_counts()
    assert list(counts["train"]) == [1, 2, 10] and sum(counts["test"].values()) == 6


def test_empty_texts_stop_the_job_before_training():
    import pandas as pd

    from sagefinetune import Job

    df = pd.DataFrame({"text": ["good", "", "bad", None, "fine", "meh"] * 5, "label": [1, 0] * 15})
    with pytest.raises(DataError, match=r"row\(s\) of the (train|test) split have an empty text.*Fix:"):
        Job.from_dataset(Dataset.from_pandas(df)).prepare()


def test_the_default_split_of_a_tiny_dataset_keeps_every_class_in_test():
    import pandas as pd

    df = pd.DataFrame({"text": [f"text {i}" for i in range(20)], "label": [i % 4 for i in range(20)]})
    dd = Dataset.from_pandas(df).load()  # 10% would be 2 rows: the default grows to one row per class
    assert sorted(dd["test"]["label"]) == [0, 1, 2, 3] and sorted(set(dd["train"]["label"])) == [0, 1, 2, 3]


@pytest.mark.parametrize("rows, test", [(50, 0.1), (37, 0.2), (103, 0.15), (12, 0.5)])
def test_stratified_splits_put_every_class_on_both_sides(rows, test):
    import pandas as pd

    labels = [0] * (rows - 4) + [1, 1, 2, 2]  # two rare classes of two rows each
    df = pd.DataFrame({"text": [f"t{i}" for i in range(rows)], "label": labels})
    dd = Dataset.from_pandas(df).split(test=test, seed=3).load()
    assert set(dd["test"]["label"]) == {0, 1, 2} == set(dd["train"]["label"])
    assert len(dd["test"]) == max(3, round(test * rows))


def test_samples_larger_than_the_data_are_noted_not_silent():
    import pandas as pd

    df = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": [i % 2 for i in range(20)]})
    ds = Dataset.from_pandas(df).sample(train=10**6)
    _, notes = ds.load_with_rows()
    assert any("sample(train=1000000): the train split has only 18 rows" in n for n in notes)
    with pytest.warns(UserWarning, match="the train split has only 18 rows"):  # load() says it too
        ds.load()


def test_a_sample_of_a_split_that_is_not_there_is_refused_before_reading():
    import pandas as pd

    df = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": [i % 2 for i in range(20)]})
    ds = Dataset.from_pandas(df).sample(train=10, validation=5)
    with pytest.raises(ConfigError, match=r"sample\(validation=5\) asks for rows of a validation split"):
        ds.notes()  # what the plan calls: nothing is read
    with pytest.raises(ConfigError, match="it has \\['test', 'train'\\]"):
        ds.load()
    with pytest.warns(UserWarning, match="the validation split has only 3 rows"):  # .split(validation=...) makes one
        assert len(ds.split(test=0.2, validation=0.2).load()["validation"]) == 3


def test_empty_text_is_reported_at_its_row_in_the_users_data():
    import pandas as pd

    from sagefinetune import Job

    texts = [f"text {i}" for i in range(40)]
    texts[27] = "   "
    df = pd.DataFrame({"text": texts, "label": [i % 2 for i in range(40)]})
    with pytest.raises(DataError, match="the first is row 27 of that split as loaded"):
        Job.from_dataset(Dataset.from_pandas(df)).prepare()
