"""A local plan with nothing asked of the user (issue 21.3): a rough time for this CPU until a probe measures it, the
rows of local files counted at plan, the steps after the rows carved for test and validation, no `Fix:` in plan lines,
and a probe that keeps its internal work to itself."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

import sagefinetune as sft
from sagefinetune.cost.cpu_speed import ROUGH_RANGE, cpu_speed, this_cpu
from sagefinetune.cost.local_speed import LocalSpeed, speed_key, speed_settings, store

LABELS = {0: "negative", 1: "positive"}


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review number {i} " * (1 + i % 7) for i in range(rows)], "label": [i % 2 for i in range(rows)]})


def quickstart():
    return (sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes").sample(train=2000, test=500, seed=42))
            .hyperparameters(epochs=1, batch_size=32, max_length=128))


def test_a_local_plan_shows_a_rough_time_for_this_cpu_with_nothing_asked():
    est = quickstart().plan().estimate
    assert est.available and est.kind == "rough" and est.steps == 63
    assert est.seconds_low == pytest.approx(est.seconds * ROUGH_RANGE[0])
    assert est.seconds_high == pytest.approx(est.seconds * ROUGH_RANGE[1])
    assert 30 < est.seconds * this_cpu().factor * this_cpu().cores / 2 < 600  # the quickstart: 2m26s measured here
    assert f"built in for this CPU ({this_cpu().cores} core(s)" in est.basis and "sft.measure_speed(job)" in est.basis
    shown = str(quickstart().plan())
    assert "estimate     " in shown and "no time" not in shown and "rough: built in for this CPU" in shown


def test_fewer_cores_and_older_instructions_predict_more_time():
    fast, avx2 = cpu_speed(8, frozenset({"amx_bf16", "avx512f"})), cpu_speed(8, frozenset({"avx2"}))
    assert fast.factor > avx2.factor > cpu_speed(8, frozenset()).factor
    assert cpu_speed(4, frozenset({"avx512f", "avx2"})).isa == "AVX-512"


def test_a_cached_probe_refines_the_rough_time(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    job = quickstart()
    settings = speed_settings(job, 1)
    store(LocalSpeed(speed_key(settings), settings, 10.0, 1.0, 0.5, 0.001, 1.0, 16, "2026-01-01 10:00"))
    est = job.plan().estimate
    assert est.kind == "measured here" and est.seconds == pytest.approx(10 + 63 * 1.0 + 0.5 + (500 + 500) * 0.001 + 1)  # an evaluation after the epoch, and the final one


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_the_rows_of_local_files_are_counted_at_plan(tmp_path, kind):
    data = frame(1000)
    path = tmp_path / f"reviews.{kind}"
    if kind == "csv":
        data.to_csv(path, index=False)
        ds = sft.Dataset.from_csv(str(path))
    elif kind == "jsonl":
        data.to_json(path, orient="records", lines=True)
        ds = sft.Dataset.from_json(str(path))
    else:
        data.to_parquet(path)
        ds = sft.Dataset.from_parquet(str(path))
    est = sft.Job.from_dataset(ds).hyperparameters(epochs=1, batch_size=30).plan().estimate
    assert est.train_rows == 900 and est.steps == 30  # 100 rows carved for the default test split
    basis = "the row count in the Parquet metadata" if kind == "parquet" else "a line count of the file"
    assert f"counted before launch by {basis}" in est.basis


def test_a_small_csv_with_line_breaks_in_quotes_is_counted_exactly(tmp_path):
    path = tmp_path / "quoted.csv"
    pd.DataFrame({"text": ["first line\nsecond line"] * 50 + ["plain"] * 50, "label": [0, 1] * 50}).to_csv(path, index=False)
    assert sft.Job.from_dataset(sft.Dataset.from_csv(str(path))).plan().estimate.train_rows == 90


@pytest.mark.parametrize("dataset, hyperparameters", [
    (sft.Dataset.from_pandas(frame(830)), {"early_stopping": 2}),  # 83 test, then 75 validation: 672 rows, 21 steps
    (sft.Dataset.from_pandas(frame(830)).split(test=100, validation=50), {}),
    (sft.Dataset.from_pandas(frame(830)).split(test=0.2, validation=0.1), {"early_stopping": 1}),
    (sft.Dataset.from_pandas({"train": frame(700), "test": frame(100)}).sample(train=500), {"early_stopping": 3}),
])
def test_the_steps_count_the_rows_left_after_test_and_validation_are_carved(dataset, hyperparameters):
    job = sft.Job.from_dataset(dataset).map_labels(LABELS).hyperparameters(epochs=1, batch_size=32, **hyperparameters)
    est = job.plan().estimate
    sizes = job.prepare().sizes()
    assert est.train_rows == sizes["train"]
    assert est.steps == -(-sizes["train"] // 32)


def plans():
    imdb = sft.Job.from_dataset(sft.Dataset.example("imdb").sample(train=1000, test=200)).map_labels(LABELS)
    where = {"bucket": "my-bucket", "role": "arn:aws:iam::123456789012:role/r"}
    yield imdb.plan()
    yield imdb.plan(nodes=2)
    yield imdb.hyperparameters(early_stopping=2).plan()
    yield imdb.plan(instance="ml.g5.12xlarge", nodes=2, **where)
    yield sft.Job.from_dataset(sft.Dataset.from_hub("stanfordnlp/imdb")).plan()
    s3 = sft.Dataset.from_s3("s3://my-bucket/train/")
    yield sft.Job.from_dataset(s3).map_labels(LABELS).plan(instance="ml.g5.xlarge", **where)


def test_plan_lines_say_what_is_known_and_how_to_know_more_without_fix():
    for plan in plans():
        shown = str(plan)
        assert "Fix:" not in shown, shown
        assert "Fix:" not in json.dumps(plan.to_dict(), default=str)


def test_the_probe_keeps_its_own_sample_quiet(monkeypatch, tmp_path):
    """The probe samples test=128 rows of its own; a note that such a sample got fewer rows is not the user's."""
    import sagefinetune.speed as speed_module

    class Backend:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self, job, plan, **kwargs):
            warnings.warn("sample(test=128): the test split has only 10 rows; all of them are used.", UserWarning,
                          stacklevel=2)
            return type("Run", (), {"training_seconds": 1.0, "metrics": {}})()

    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(speed_module, "LocalBackend", Backend)
    monkeypatch.setattr(speed_module, "timings", lambda *a: "timed")
    job = sft.Job.from_dataset(sft.Dataset.from_pandas(frame(100)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert speed_module._probe(job, 1, {}, "python") == "timed"
    assert [str(w.message) for w in caught] == []
