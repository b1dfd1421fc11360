"""class_weights and early_stopping on the client: checked at the builder, at plan and at fit before anything runs
or is uploaded; the validation split carved for early stopping; the imbalance warning; the estimate as a ceiling."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import sagefinetune as sft
from sagefinetune.plans.hyperparameters import IMBALANCE_RATIO, checked_at_fit

STARS = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path / "cache"))


def reviews(counts: dict[int, int]) -> sft.Dataset:
    """Rows with star ratings, ``counts[stars]`` rows of each, and a test split of 30."""
    stars = [s for s, n in counts.items() for _ in range(n)]
    train = pd.DataFrame({"review": [f"review {i} of {s} stars" for i, s in enumerate(stars)], "stars": stars})
    keys = list(counts)
    test = pd.DataFrame({"review": [f"test review {i}" for i in range(30)], "stars": [keys[i % len(keys)]
                                                                                      for i in range(30)]})
    return sft.Dataset.from_pandas({"train": train, "test": test}).columns(text="review", label="stars")


def job(counts=None, **hp) -> sft.Job:
    data = reviews(counts or {1: 40, 2: 40, 3: 40, 4: 40, 5: 40})
    return sft.Job.from_dataset(data).map_labels(STARS).hyperparameters(**hp)


# ---- the builder ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, message", [
    ("balance", "did you mean 'balanced'"),
    ({"neutral": 0}, "finite numbers > 0; got {'neutral': 0}"),
    ({"neutral": float("nan")}, "finite numbers > 0"),
    ({"neutral": True}, "finite numbers > 0"),
    ({3: 2.0}, "class names (text"),
    ({}, "'balanced' or a mapping"),
    (["neutral"], "'balanced' or a mapping"),
])
def test_class_weights_are_checked_at_the_builder(value, message):
    with pytest.raises(sft.ConfigError, match="Fix:") as err:
        sft.Job.from_dataset(reviews({1: 5, 5: 5})).hyperparameters(class_weights=value)
    assert message in str(err.value)


def test_early_stopping_values_are_checked_at_the_builder():
    base = sft.Job.from_dataset(reviews({1: 5, 5: 5}))
    with pytest.raises(sft.ConfigError, match="early_stopping=-1 must be >= 0"):
        base.hyperparameters(early_stopping=-1)
    with pytest.raises(sft.ConfigError, match="did you mean 'eval_loss'"):
        base.hyperparameters(early_stopping_metric="loss")


def test_the_job_keeps_its_own_copy_of_the_weights():
    weights = {"neutral": 3.0}
    j = job(class_weights=weights)
    weights["neutral"] = 100.0
    assert j.hyperparameters_["class_weights"] == {"neutral": 3.0}
    assert j.plan().hyperparameters["class_weights"] == '{"neutral":3.0}'
    assert "class_weights" not in job(class_weights=None).plan().hyperparameters  # None: the default, unweighted


# ---- plan ------------------------------------------------------------------------------------------------------
def test_class_names_must_be_in_the_label_map_at_plan():
    with pytest.raises(sft.ConfigError, match="'nuetral', which is not a class.*did you mean 'neutral'.*Fix:"):
        job(class_weights={"nuetral": 3.0}).plan()


def test_early_stopping_rules_at_plan():
    with pytest.raises(sft.ConfigError, match="eval_each_epoch=False turns them off.*Fix:"):
        job(early_stopping=2, eval_each_epoch=False).plan()
    with pytest.raises(sft.ConfigError, match="not computed for single-label rows.*Fix:"):
        job(early_stopping=2, early_stopping_metric="eval_f1_micro").plan()
    s3 = sft.Dataset.from_s3(train="s3://b/train/", test="s3://b/test/").columns(text="t", label="l")
    with pytest.raises(sft.ConfigError, match=r"from_s3 data has none.*Fix: Dataset.from_s3\(train=..., validation="):
        sft.Job.from_dataset(s3).map_labels(STARS).hyperparameters(early_stopping=2).plan(instance="ml.g5.xlarge")
    with_validation = sft.Dataset.from_s3(train="s3://b/train/", validation="s3://b/v/", test="s3://b/test/")
    sft.Job.from_dataset(with_validation.columns(text="t", label="l")).map_labels(STARS).hyperparameters(
        early_stopping=2).plan(instance="ml.g5.xlarge")


def test_the_plan_says_what_early_stopping_does_and_that_the_estimate_is_a_ceiling():
    plan = job(early_stopping=3, save_steps=50).plan(instance="ml.g5.xlarge", train_rows=100_000)
    text = str(plan)
    assert "early_stopping=3: evaluates every 50 steps on the validation split" in text
    assert "without a better eval_f1; the model is the best checkpoint" in text
    assert "  estimate     up to " in text and "  ceiling      early_stopping=3: the job may stop earlier" in text
    assert plan.estimate.to_dict()["ceiling"].startswith("early_stopping=3")
    plain = job().plan(instance="ml.g5.xlarge", train_rows=100_000)
    assert "estimate     up to" not in str(plain) and "ceiling" not in str(plain) and plain.estimate.ceiling == ""
    # the ceiling is the full run (its evaluations are on the validation split set aside, not the test split)
    assert plain.estimate.seconds == pytest.approx(plan.estimate.seconds, rel=0.01)


# ---- data: the validation split early stopping watches ---------------------------------------------------------
def test_early_stopping_carves_a_stratified_validation_split_and_says_so():
    plain = job().prepare()
    assert set(plain.tables) == {"train", "test"}
    prepared = job(early_stopping=2).prepare()
    assert prepared.sizes() == {"train": 180, "validation": 20, "test": 30}
    assert prepared.class_counts("validation") == {"negative": 8, "neutral": 4, "positive": 8}  # stratified
    assert any(n.startswith("early_stopping: the data has no validation split, so 20 rows (10% of train")
               for n in prepared.notes)
    assert not any("early_stopping" in n for n in plain.notes)  # and the cache kept the two apart
    given = sft.Job.from_dataset(reviews({1: 40, 3: 40, 5: 40}).split(test=None, validation=0.2)).map_labels(
        STARS).hyperparameters(early_stopping=2).prepare()
    assert given.sizes()["validation"] == 24 and not any("early_stopping" in n for n in given.notes)


# ---- fit: the classes as read, and the imbalance warning -------------------------------------------------------
def test_weights_naming_a_class_the_data_lacks_stop_the_fit_before_anything_runs(tmp_path):
    inferred = sft.Job.from_dataset(reviews({1: 20, 5: 20})).hyperparameters(class_weights={"3": 2.0})
    with pytest.raises(sft.ConfigError, match=r"'3', which is not a class of the label map \['1', '5'\]"):
        inferred.fit(run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "train.log").exists() and not (tmp_path / "run" / "input").exists()


def test_fit_warns_of_imbalance_over_5_to_1_and_names_class_weights():
    skewed = job({1: 120, 3: 10, 5: 60})
    notes = checked_at_fit(skewed, skewed.prepare())
    [warning] = [n for n in notes if "imbalanced" in n]
    assert "'negative' has 120 rows, 'neutral' 10 (12.0:1, over 5:1)" in warning
    assert "Fix: .hyperparameters(class_weights='balanced')" in warning
    weighted = job({1: 120, 3: 10, 5: 60}, class_weights="balanced")
    assert not [n for n in checked_at_fit(weighted, weighted.prepare()) if "imbalanced" in n]
    mild = job({1: 50, 3: 10, 5: 30})  # 5:1 exactly is not over it
    assert IMBALANCE_RATIO == 5 and not [n for n in checked_at_fit(mild, mild.prepare()) if "imbalanced" in n]


def test_the_warning_reaches_the_user_at_fit(tmp_path, monkeypatch):
    """The local backend warns before it writes a channel (the run is stopped there: no training here)."""
    from sagefinetune.backends import local

    def stop(*args, **kwargs):
        raise RuntimeError("stopped before training")

    monkeypatch.setattr(local, "_check_same_job", stop)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(RuntimeError, match="stopped before"):
        warnings.simplefilter("always")
        job({1: 120, 3: 10, 5: 60}).fit(run_dir=tmp_path / "run", progress=False)
    assert any("class_weights='balanced'" in str(w.message) for w in caught)


def test_multi_label_counts_positives_per_label_and_always_has_a_validation_split():
    labels = [["a"]] * 60 + [["a", "b"]] * 10 + [["c"]] * 2
    train = pd.DataFrame({"text": [f"row {i}" for i in range(len(labels))], "labels": labels})
    test = pd.DataFrame({"text": ["t1", "t2", "t3"], "labels": [["a"], ["b"], ["c"]]})
    data = sft.Dataset.from_pandas({"train": train, "test": test}).columns(label="labels")
    j = sft.Job.from_dataset(data).map_labels(sft.LabelMap.multi_label(["a", "b", "c"])).hyperparameters(
        early_stopping=2)
    assert "eval_f1_micro" in str(j.plan())
    prepared = j.prepare()
    assert sum(prepared.class_counts("train").values()) + sum(prepared.class_counts("validation").values()) == 82
    [warning] = [n for n in checked_at_fit(j, prepared) if "imbalanced" in n]
    assert warning.startswith("the train split's labels are imbalanced: 'a' has ")
