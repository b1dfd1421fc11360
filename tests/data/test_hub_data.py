"""Dataset.from_hub for real: 🤗 datasets and huggingface_hub, unmocked, against a local Hub (tests/hub_server.py).

Configs declared in the card, Parquet / CSV / JSON Lines files, a revision pin, a private repository and its token,
a repository that does not exist, columns that do not match, and the design card's ``amazon_reviews_multi`` read
from a small fake of its maintained copy (tests/hub_datasets.py) at the pinned revision.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import hub_datasets as hd
import pytest
from conftest import HUB_OTHER_TOKEN, HUB_READ_TOKEN, HUB_TOKEN

import sagefinetune as sft
from sagefinetune import ColumnError, ConfigError, Dataset, DatasetUnavailableError, Job

CARD = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}
ROWS = {"review": ["a fine kettle", "it broke", "does the job", "love it", "meh"] * 4, "stars": [4, 1, 3, 5, 2] * 4}


def reviews_repo(hub, repo_id: str, fmt: str = "parquet", *, private: bool = False) -> str:
    """Configs en, fr and de, each with train (20 rows) and test (5) files in one format; returns the commit.

    One format per repository: 🤗 datasets picks the reader from the first config's files, as on the Hub.
    """
    write, ext = {"parquet": (hd.parquet, "-00000-of-00001.parquet"), "csv": (hd.csv_bytes, ".csv"),
                  "json": (hd.jsonl, ".jsonl")}[fmt]
    configs = ("en", "fr", "de")
    files = {"README.md": hd.card({c: {s: f"{c}/{s}{ext}" for s in ("train", "test")} for c in configs})}
    for config in configs:
        rows = {"review": [f"{config}: {t}" for t in ROWS["review"]], "stars": ROWS["stars"]}
        files[f"{config}/train{ext}"] = write(rows)
        files[f"{config}/test{ext}"] = write({k: v[:5] for k, v in rows.items()})
    return hub.add_commit(repo_id, files, private=private)


# ---- configs, formats, revisions ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_each_config_reads_its_own_files_in_each_format(hub_data, fmt):
    repo = f"alice/reviews-{fmt}"
    reviews_repo(hub_data, repo, fmt)
    for config in ("fr", "en"):
        before = len(hub_data.requests)
        dd = Dataset.from_hub(repo, config).columns(text="review", label="stars").load()
        assert {k: len(v) for k, v in dd.items()} == {"train": 20, "test": 5}
        assert all(t.startswith(f"{config}: ") for t in dd["train"]["text"]) and dd["train"]["label"][:2] == [4, 1]
        data = [p for _, p, _ in hub_data.requests[before:] if p.startswith(f"/datasets/{repo}/resolve/")
                and "README" not in p and not p.endswith((".py", ".yaml", ".json"))]
        assert data and all(f"/{config}/" in p for p in data), data


def test_several_configs_need_one_and_a_wrong_one_gets_the_closest(hub_data):
    reviews_repo(hub_data, "alice/reviews-configs")
    with pytest.raises(ConfigError, match=r"has several configs: en, fr, de\. Fix: name one, e\.g\. "
                                          r"Dataset\.from_hub\('alice/reviews-configs', 'en'\)"):
        Dataset.from_hub("alice/reviews-configs").columns(text="review", label="stars").load()
    with pytest.raises(ConfigError, match=r"has no config 'eng'; did you mean 'en'\? Its configs are en, fr, de"):
        Dataset.from_hub("alice/reviews-configs", "eng").columns(text="review", label="stars").load()


def test_a_revision_pin_reads_that_commit_and_not_main(hub_data):
    card = hd.card({"default": {"train": "train.parquet", "test": "test.parquet"}})
    old = hub_data.add_commit("alice/reviews-pinned", {"README.md": card, "train.parquet": hd.parquet(ROWS),
                                                       "test.parquet": hd.parquet(ROWS)})
    newer = {"review": ["newer"] * 3, "stars": [1, 5, 1]}
    new = hub_data.add_commit("alice/reviews-pinned", {"train.parquet": hd.parquet(newer)}, message="newer rows")
    ds = Dataset.from_hub("alice/reviews-pinned").columns(text="review", label="stars")
    assert len(ds.load()["train"]) == 3  # main
    pinned = Dataset.from_hub("alice/reviews-pinned", revision=old).columns(text="review", label="stars")
    assert len(pinned.load()["train"]) == 20 and f"revision={old!r}" in repr(pinned)
    assert len(Dataset.from_hub("alice/reviews-pinned", revision=new).columns(text="review", label="stars")
               .load()["train"]) == 3
    with pytest.raises(DatasetUnavailableError, match="at revision 'v9'.*Fix: check the revision"):
        Dataset.from_hub("alice/reviews-pinned", revision="v9").columns(text="review", label="stars").load()


def test_a_missing_dataset_says_what_may_be_wrong(hub_data):
    with pytest.raises(DatasetUnavailableError) as err:
        Dataset.from_hub("alice/no-such-reviews").load()
    message = str(err.value)
    assert "could not load 'alice/no-such-reviews'" in message and "does not exist, or it is private" in message
    assert "Fix: check the id" in message and isinstance(err.value.__cause__, Exception)


def test_columns_that_do_not_match_list_the_columns_and_the_closest(hub_data):
    reviews_repo(hub_data, "alice/reviews-columns")
    with pytest.raises(ColumnError, match=r"the text column 'reviews' is not in the train split; did you mean "
                                          r"'review'\? The columns are \['review', 'stars'\]"):
        Dataset.from_hub("alice/reviews-columns", "en").columns(text="reviews", label="stars").load()
    with pytest.raises(ColumnError, match=r"the label column 'star' .*did you mean 'stars'"):
        Dataset.from_hub("alice/reviews-columns", "en").columns(text="review", label="star").load()


# ---- a private repository and its token ------------------------------------------------------------------------
def test_a_private_dataset_reads_with_a_token_that_is_never_shown(hub_data, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    reviews_repo(hub_data, "alice/private-reviews", private=True)
    columns = {"text": "review", "label": "stars"}
    monkeypatch.delenv("HF_TOKEN")
    shown = []
    with pytest.raises(DatasetUnavailableError, match="private or gated.*a token was not found.*set HF_TOKEN") as no:
        Dataset.from_hub("alice/private-reviews", "en").columns(**columns).load()
    shown.append(no.value)
    with pytest.raises(DatasetUnavailableError, match="a token was passed") as other:  # bob's token: no access
        Dataset.from_hub("alice/private-reviews", "en", token=HUB_OTHER_TOKEN).columns(**columns).load()
    shown.append(other.value)

    ds = Dataset.from_hub("alice/private-reviews", "en", token=HUB_READ_TOKEN).columns(**columns)
    assert len(ds.load()["train"]) == 20
    job = Job.from_hub("alice/private-reviews", "en", text="review", label="stars", token=HUB_READ_TOKEN)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)  # the usual way: huggingface_hub finds it
    assert len(Dataset.from_hub("alice/private-reviews", "fr").columns(**columns).load()["test"]) == 5
    with pytest.raises(ConfigError, match="needs a non-empty string; got a bytes") as bad:
        Dataset.from_hub("alice/private-reviews", token=HUB_TOKEN.encode())
    shown.append(bad.value)

    sent = [ok for _, path, ok in hub_data.requests if "private-reviews" in path]
    assert True in sent and False in sent  # reads with a valid token, and without one
    out, err = capfd.readouterr()
    everything = [out, err, caplog.text, repr(ds), repr(job), str(job.plan(instance="ml.g5.xlarge").to_dict())]
    everything += ["".join(traceback.format_exception(e)) for e in shown]
    for token in (HUB_TOKEN, HUB_READ_TOKEN, HUB_OTHER_TOKEN):
        assert not [text for text in everything if token in text]


# ---- the design card's amazon_reviews_multi -----------------------------------------------------------------
@pytest.fixture
def amazon(hub_data):
    hd.serve_amazon_copy(hub_data, rows=300)
    return hub_data


def test_the_card_name_reads_all_six_languages_of_the_pinned_copy_in_the_seeds_fields(amazon, capfd):
    ds = Dataset.from_hub("amazon_reviews_multi")
    assert (ds.text, ds.label) == ("review_body", "stars")
    dd = ds.load()
    assert {k: len(v) for k, v in dd.items()} == {"train": 1800, "validation": 1800, "test": 1800}
    assert sorted(set(dd["train"]["label"])) == [1, 2, 3, 4, 5]  # stars, not the copy's 0..4
    assert not [t for t in dd["train"]["text"] if "newer main" in t]  # main moved past the pin; the pin is read
    err = capfd.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("[sagefinetune] amazon_reviews_multi")]
    assert line == ["[sagefinetune] amazon_reviews_multi: reading its maintained copy mteb/AmazonReviewsClassification"
                    f" at the pinned revision {hd.AMAZON.revision}; languages de, en, es, fr, ja, zh; review_body = "
                    "text, stars = label + 1"]
    by_language = ds.columns(label="language").label_counts()
    assert by_language["test"] == {lang: 300 for lang in ("de", "en", "es", "fr", "ja", "zh")}
    stars = ds.label_counts()["train"]
    assert stars == {1: 360, 2: 360, 3: 360, 4: 360, 5: 360}


def test_one_language_reads_only_its_files(amazon):
    before = len(amazon.requests)
    dd = Dataset.from_hub("amazon_reviews_multi", "en").load()
    assert {k: len(v) for k, v in dd.items()} == {"train": 300, "validation": 300, "test": 300}
    assert dd["train"]["text"][4] == "Excellent\n\ncharger: excellent (en train 4)" and dd["train"]["label"][4] == 5
    data = [p for _, p, _ in amazon.requests[before:] if p.endswith(".parquet")]
    assert data and all(f"/{hd.AMAZON.revision}/en/" in p for p in data)


def test_the_original_all_languages_config_and_another_revision(amazon, capfd):
    assert repr(Dataset.from_hub("amazon_reviews_multi", "all_languages")) == repr(Dataset.from_hub("amazon_reviews_multi"))
    main = Dataset.from_hub("amazon_reviews_multi", "en", revision="main")
    assert "@main, 'en'" in repr(main)
    assert len(main.load()["train"]) == 7  # what main holds now: the reason for the pin
    assert "at revision main;" in capfd.readouterr().err


def test_the_card_call_prepares_three_classes_from_the_stars(amazon):
    prepared = Job.from_hub("amazon_reviews_multi").map_labels(CARD).prepare()
    assert prepared.label_map.names_ == ("negative", "neutral", "positive")
    assert prepared.sizes() == {"train": 1800, "validation": 1800, "test": 1800}
    labels = prepared.tables["train"]["label"].to_pylist()
    assert [labels.count(i) for i in range(3)] == [720, 360, 720]


def test_a_wrong_language_fails_at_the_call_with_no_request(hub_data):
    before = len(hub_data.requests)
    with pytest.raises(ConfigError, match=r"'amazon_reviews_multi' has no config 'english'.* languages de, en, es, "
                                          r"fr, ja, zh \(or 'all_languages'\)"):
        Job.from_hub("amazon_reviews_multi", "english")
    with pytest.raises(ConfigError, match="has no config 'EN'; did you mean 'en'"):
        Dataset.from_hub("amazon_reviews_multi", "EN")
    assert len(hub_data.requests) == before


def test_the_card_plan_is_pure_and_knows_the_rows(hub_data):
    before = len(hub_data.requests)
    plan = Job.from_hub("amazon_reviews_multi").map_labels(CARD).plan(instance="ml.p3.16xlarge", nodes=1, spot=True)
    assert len(hub_data.requests) == before
    assert plan.labels == ("negative", "neutral", "positive") and plan.sagemaker.spot
    assert plan.estimate.train_rows == 1_200_000 and plan.estimate.seconds > 0
    assert "mteb/AmazonReviewsClassification@6b5d328 (pinned), all languages" in plan.dataset
    assert "read from the Hub on this machine" in str(plan)


def test_the_card_plan_imports_no_hub_client(tmp_path):
    code = ("import sys, sagefinetune as sft; "
            "sft.Job.from_hub('amazon_reviews_multi').map_labels({1: 'negative', 2: 'negative', 3: 'neutral', "
            "4: 'positive', 5: 'positive'}).plan(instance='ml.p3.16xlarge', nodes=1, spot=True); "
            "print([m for m in ('datasets', 'huggingface_hub', 'pyarrow', 'torch') if m in sys.modules])")
    env = {**os.environ, "PYTHONPATH": str(Path(sft.__file__).resolve().parents[1]), "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=tmp_path)
    assert out.stdout.strip() == "[]"


def test_script_repos_of_the_name_point_at_the_card_name():
    for repo in ("mteb/amazon_reviews_multi", "defunct-datasets/amazon_reviews_multi"):
        with pytest.raises(DatasetUnavailableError, match=rf"'{repo}' cannot be loaded: .*Fix: Dataset\.from_hub"
                                                          r"\('amazon_reviews_multi', 'en'\)"):
            Dataset.from_hub(repo, "en").load()
