"""max_length="auto": the rule, what the plan reads before launch and shows, and the choice made again at fit."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import sagefinetune as sft
from sagefinetune.cost.length import ASSUMED, auto_length, percentile, plan_length, typed_hyperparameters
from sagefinetune.errors import ConfigError

LABELS = {0: "negative", 1: "positive"}


def imdb(**hp):
    return sft.Job.from_dataset(sft.Dataset.example("imdb").sample(train=1200, test=500)).map_labels(LABELS) \
        .hyperparameters(**hp)


def test_the_rule_is_the_95th_percentile_rounded_up_to_8_and_capped_at_the_model():
    assert percentile(range(101)) == 95.0 and percentile([7]) == 7.0
    assert auto_length([31, 35, 38, 44, 45], 512).value == 48  # 44.8 -> 48
    assert auto_length([10] * 99 + [9000], 512).value == 16  # 10 + 0.05 * ... interpolated, rounded up
    assert auto_length([700] * 10, 512).value == 512 and auto_length([700] * 10, 512).truncated == 1.0
    assert auto_length([3, 4, 5], 512).value == 8  # the entry point's lowest max_length
    chosen = auto_length(list(range(1, 201)), 128)
    assert chosen.value == 128 and chosen.truncated == pytest.approx(72 / 200) and chosen.percentile == 190.05


def test_auto_is_the_default_and_the_plan_shows_the_length_and_the_rows_it_cuts():
    plan = imdb(epochs=1).plan()
    assert sft.Job.from_dataset(sft.Dataset.example("imdb")).hyperparameters_["max_length"] == "auto"
    assert plan.hyperparameters["max_length"] == "512" and plan.length.auto and plan.length.model_max == 512
    assert plan.length.truncated == pytest.approx(14 / 101) and plan.length.percentile == 757
    shown = str(plan)
    assert "max_length=512" in shown
    assert ("max_length   512 (auto: 95th percentile 757 tokens, capped at the model's maximum 512); 14% of train "
            "rows are longer and lose their end (head) [bundled example 'imdb', all-MiniLM-L6-v2's tokens]") in shown
    assert plan.to_dict()["max_length"]["value"] == 512
    short = sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes")).hyperparameters(truncation="head+tail").plan()
    assert short.hyperparameters["max_length"] == "48" and "lose their middle (head+tail)" in short.length.line()


def test_a_length_set_is_kept_and_the_plan_says_how_many_rows_it_cuts():
    plan = imdb(max_length=128).plan()
    assert plan.hyperparameters["max_length"] == "128" and not plan.length.auto
    assert plan.length.line().startswith("128 (set); 87% of train rows are longer and lose their end (head)")


def test_the_estimate_follows_the_chosen_length():
    where = {"instance": "ml.g5.xlarge", "bucket": "my-bucket", "role": "arn:aws:iam::123456789012:role/r",
             "train_rows": 200_000}
    auto, short = imdb().plan(**where), imdb(max_length=128).plan(**where)
    assert auto.hyperparameters["max_length"] == "512"
    assert auto.estimate.seconds > 1.4 * short.estimate.seconds  # about twice the tokens per row
    assert auto.estimate.cost > 1.4 * short.estimate.cost


def test_local_files_and_frames_are_sampled_before_launch(tmp_path):
    frame = pd.DataFrame({"review": ["word " * n for n in range(1, 401)], "label": [n % 2 for n in range(400)]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    frame.to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "r.parquet")
    (tmp_path / "r.json").write_text(json.dumps(frame.to_dict("records")))
    sources = [sft.Dataset.from_pandas(frame), sft.Dataset.from_csv(str(tmp_path / "r.csv")),
               sft.Dataset.from_json(str(tmp_path / "r.jsonl")), sft.Dataset.from_json(str(tmp_path / "r.json")),
               sft.Dataset.from_parquet(str(tmp_path / "r.parquet"))]
    chosen = [plan_length(sft.Job.from_dataset(ds.columns(text="review"))) for ds in sources]
    assert {c.value for c in chosen} == {480}  # 95% of 2,000 characters / 4 + 2 = 477 -> 480
    assert all(c.percentile == chosen[0].percentile for c in chosen)
    assert "the first 400 rows of r.csv, characters / 4" in chosen[1].basis


def test_data_not_read_before_launch_assumes_a_length_and_says_so():
    remote = sft.Job.from_dataset(sft.Dataset.from_s3("s3://my-bucket/train/")).map_labels(LABELS)
    plan = remote.plan(instance="ml.g5.xlarge", bucket="my-bucket", role="arn:aws:iam::123456789012:role/r")
    assert plan.hyperparameters["max_length"] == str(ASSUMED) and not plan.length.at_fit
    assert plan.length.line() == (
        "256 assumed (auto: s3(train='s3://my-bucket/train/') is read by SageMaker in place, never by this machine; "
        "so the job trains with 256; .hyperparameters(max_length=<tokens>) chooses another)")
    hub = plan_length(sft.Job.from_dataset(sft.Dataset.from_hub("stanfordnlp/imdb")))
    assert hub.value == 256 and hub.at_fit and "fit() chooses from its rows" in hub.line()
    assert plan_length(sft.Job.from_dataset(sft.Dataset.from_hub("stanfordnlp/imdb")).hyperparameters(
        max_length=64)) is None  # set, and nothing to measure it against: nothing to say


def test_auto_is_checked_at_the_builder_call():
    assert imdb(max_length="auto").hyperparameters_["max_length"] == "auto"
    with pytest.raises(ConfigError, match=r"max_length='long' has the wrong type.*Fix: .hyperparameters\(max_length='auto'\)"):
        imdb(max_length="long")
    with pytest.raises(ConfigError, match=r"must be in \[8, 8192\], or 'auto'"):
        imdb(max_length=4)
    with pytest.raises(ConfigError, match="truncation='tail' must be head or head\\+tail"):
        imdb(truncation="tail")
    assert typed_hyperparameters({"max_length": "auto", "epochs": 2})["max_length"] == "auto"
    assert typed_hyperparameters({"max_length": 64})["max_length"] == 64


def test_fit_chooses_again_from_the_prepared_rows_with_the_models_tokenizer():
    from sagefinetune.cost.measure import choose_length

    texts = ["a fine film " * n for n in range(1, 201)]
    job = sft.Job.from_dataset(sft.Dataset.from_pandas(pd.DataFrame({"text": texts, "label": [0, 1] * 100})))
    plan = job.plan()
    refined, lengths, how = choose_length(job, plan, job.prepare())
    assert "train rows tokenized at fit" in how and len(lengths) == 180  # the train split, 10% carved for test
    assert refined.length.value == int(refined.hyperparameters["max_length"]) <= 512
    assert refined.length.basis == how and refined.length.auto
    fixed = job.hyperparameters(max_length=64)
    assert choose_length(fixed, fixed.plan(), fixed.prepare())[0].hyperparameters["max_length"] == "64"


def test_the_docstring_examples_run():
    import doctest

    import sagefinetune.cost.length

    result = doctest.testmod(sagefinetune.cost.length)
    assert result.attempted > 0 and result.failed == 0
