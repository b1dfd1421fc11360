"""Time and cost before launch: the calibrated model, its leave-one-out check, advice, local speed. Pure but one fit."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from conftest import measured_speed as speed

import sagefinetune as sft
from sagefinetune.cost import calibration, estimate, throughput
from sagefinetune.cost.local_speed import LocalSpeed, timings
from sagefinetune.entrypoint import contract
from sagefinetune.facts import instances


def imdb(**hp):
    return sft.Job.from_dataset(sft.Dataset.example("imdb")).hyperparameters(**{"epochs": 1, "max_length": 256, **hp})


def seed_job(**hp):
    """The AWS benchmark's recipe: distilbert, every row padded to 512 tokens, fp32, batch 32."""
    settings = {"epochs": 30, "batch_size": 32, "learning_rate": 5e-5, "max_length": 512, "pad_to_max_length": True,
                "precision": "fp32", "eval_each_epoch": False, **hp}
    return (sft.Job.from_dataset(sft.Dataset.from_s3(train="s3://b/amazon_polarity/train/"))
            .map_labels(sft.LabelMap.names(["negative", "positive"])).model("distilbert-base-uncased")
            .hyperparameters(**settings))


@pytest.fixture(scope="module")
def derived():
    return calibration.derive()  # the 25-run fit and 25 leave-one-out fits: a few seconds


# ---- the calibration -----------------------------------------------------------------------------------------
def test_stored_calibration_is_what_the_fit_gives(derived):
    stored = estimate.calibration_data()
    for key, value in derived["calibration"].items():
        assert stored["calibration"][key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
    assert stored["range"] == pytest.approx(derived["range"], rel=1e-3)
    assert [r["predicted_seconds"] for r in stored["leave_one_out"]["runs"]] == pytest.approx(
        [r["predicted_seconds"] for r in derived["leave_one_out"]["runs"]], rel=1e-3)
    assert stored["seed"] == derived["seed"]


def test_leave_one_out_over_the_25_runs_is_within_the_bound(derived):
    loo = derived["leave_one_out"]
    assert len(loo["runs"]) == 25
    times = [abs(r["time_error"]) for r in loo["runs"]]
    costs = [abs(r["cost_error"]) for r in loo["runs"]]
    assert sorted(times)[12] <= 0.15 and sorted(costs)[12] <= 0.15  # median
    assert max(times) <= 0.35 and max(costs) <= 0.35  # every run


def test_the_seed_facts_match_the_issue(derived):
    seed = derived["seed"]
    assert seed["speedup_16_32"] == pytest.approx(1.6, abs=0.05) and seed["cost_ratio_16_32"] == pytest.approx(1.26, abs=0.01)
    assert seed["f1_32gpu_100k"] < seed["f1_32gpu_100k_scaled_lr"] < seed["f1_1gpu_100k"]


def test_published_gpu_speeds_are_reproduced_by_the_speed_rule(derived):
    for point in derived["gpu_speeds"]["points"]:
        assert point["model"] / point["published"] == pytest.approx(1, abs=0.35), point
    assert derived["range"]["extrapolated"] < 1.5


# ---- estimates on SageMaker ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n, i in instances.INSTANCES.items() if i.gpus])
def test_every_gpu_instance_gets_an_estimate(name):
    plan = imdb().plan(instance=name, nodes=2)
    est = plan.estimate
    inst = instances.lookup(name)
    assert est.available and est.seconds_low < est.seconds < est.seconds_high
    assert est.billable_seconds == est.seconds
    assert est.cost == pytest.approx(est.seconds / 3600 * inst.price_per_hour * 2)
    assert est.spot_cost == pytest.approx(est.cost * instances.SPOT_FACTOR)
    assert est.kind == "extrapolated" and f"{inst.gpu} {'bf16' if inst.bf16 else 'fp16'}" in est.basis
    assert "estimate" in str(plan) and plan.to_dict()["estimate"]["seconds"] == est.seconds


def test_the_seeds_own_settings_are_calibrated_and_reproduce_its_runs():
    plan = seed_job().plan(instance="ml.p3.16xlarge", nodes=4, train_rows=90_000)
    est = plan.estimate
    assert est.kind == "calibrated" and "V100 fp32 as the AWS benchmark ran" in est.basis
    assert est.seconds == pytest.approx(3165, rel=0.1)  # the benchmark: 3,080-3,279 s
    assert est.cost == pytest.approx(98.8, rel=0.1)
    extrapolated = seed_job(precision="auto").plan(instance="ml.p3.16xlarge", nodes=4, train_rows=90_000).estimate
    assert extrapolated.kind == "extrapolated" and extrapolated.seconds < est.seconds  # fp16 is faster than fp32
    assert extrapolated.seconds_high / extrapolated.seconds > est.seconds_high / est.seconds  # and less certain


def test_scaling_advice_shows_the_next_step_up():
    plan = seed_job().plan(instance="ml.p3.16xlarge", nodes=2, train_rows=90_000)
    step = next(a for a in plan.estimate.advice if a.startswith("2 -> 4 nodes (16 -> 32 GPUs)"))
    speedup, cost = (float(x) for x in step.split(": ")[1].split("x faster for ")[0:1] + [step.split("for ")[1].split("x")[0]])
    assert 1.4 < speedup < 2.0 and 1.0 < cost < 1.45
    small = imdb().plan(instance="ml.p3.16xlarge", nodes=2).estimate.advice[0]
    assert "scaling stops paying here" in small  # a small job is mostly start-up: twice the nodes barely help


def test_learning_rate_warning_and_scale_lr():
    warned = imdb().plan(instance="ml.g5.12xlarge", nodes=2)
    assert any("global batch 256 is 8x the batch of 32" in a and "scale_lr=True" in a for a in warned.estimate.advice)
    scaled = imdb().plan(instance="ml.g5.12xlarge", nodes=2, scale_lr=True)
    lr = contract.parse_hyperparameters(dict(scaled.hyperparameters))["learning_rate"]
    base = contract.parse_hyperparameters(dict(warned.hyperparameters))["learning_rate"]  # chosen for MiniLM's size
    assert base == 1.5e-4 and lr == pytest.approx(base * math.sqrt(8))
    assert not any("global batch" in a for a in scaled.estimate.advice) and any("scale_lr" in n for n in scaled.notes)
    assert scaled.sagemaker.checkpoint_s3 != warned.sagemaker.checkpoint_s3  # another rate: another run
    single = imdb().plan(instance="ml.g5.xlarge", scale_lr=True)
    assert single.hyperparameters["learning_rate"] == "0.00015"  # one GPU: nothing to scale (MiniLM's default rate)
    local = imdb().plan(nodes=2, scale_lr=True)
    assert float(local.hyperparameters["learning_rate"]) == pytest.approx(1.5e-4 * math.sqrt(2))
    with pytest.raises(sft.ConfigError, match="scale_lr must be True or False"):
        imdb().plan(scale_lr="yes")


# ---- monotonic sanity --------------------------------------------------------------------------------------------
FAMILIES = [["ml.p3.2xlarge", "ml.p3.8xlarge", "ml.p3.16xlarge"], ["ml.g4dn.xlarge", "ml.g4dn.12xlarge"],
            ["ml.g5.xlarge", "ml.g5.12xlarge", "ml.g5.48xlarge"], ["ml.g6.xlarge", "ml.g6.12xlarge", "ml.g6.48xlarge"],
            ["ml.p4d.24xlarge"], ["ml.p5.48xlarge"]]
JOBS = {
    "minilm short": lambda: imdb(max_length=16, batch_size=8),
    "minilm": lambda: imdb(),
    "bert-large static": lambda: imdb(pad_to_max_length=True, max_length=512).model("bert-large-uncased"),
}


@pytest.mark.parametrize("kind", list(JOBS))
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f[0])
def test_more_gpus_never_predict_more_time(kind, family):
    """More nodes of an instance, or a bigger instance of a family on as many nodes: never more seconds."""
    job = JOBS[kind]()
    for rows in (1_000, 1_000_000):
        grid = {(name, nodes): job.plan(instance=name, nodes=nodes, train_rows=rows).estimate.seconds
                for name in family for nodes in (1, 2, 3, 4, 8)}
        for name in family:
            times = [grid[(name, n)] for n in (1, 2, 3, 4, 8)]
            assert all(b <= a * (1 + 1e-12) for a, b in zip(times, times[1:])), (kind, rows, name, times)
        for nodes in (1, 2, 3, 4, 8):
            times = [grid[(name, nodes)] for name in family]
            assert all(b <= a * (1 + 1e-12) for a, b in zip(times, times[1:])), (kind, rows, nodes, times)


@pytest.mark.parametrize("instance", ["ml.p3.2xlarge", "ml.g5.48xlarge", "ml.p5.48xlarge"])
def test_more_rows_never_predict_less_time(instance):
    for job in (JOBS["minilm"](), JOBS["minilm short"](), seed_job()):
        times = [job.plan(instance=instance, nodes=2, train_rows=rows).estimate.seconds
                 for rows in (1, 10, 100, 1_000, 31_999, 32_000, 32_001, 10**6, 10**8)]
        assert times == sorted(times)


def test_static_padding_costs_more_than_dynamic_padding():
    dynamic = imdb(max_length=512).plan(instance="ml.g5.xlarge").estimate
    static = imdb(max_length=512, pad_to_max_length=True).plan(instance="ml.g5.xlarge").estimate
    assert static.seconds > dynamic.seconds
    assert "512 padded tokens a row" in static.basis and "512 padded" not in dynamic.basis


def test_throughput_pieces():
    assert throughput.padded_tokens_per_row(None, 128, 32, pad_to_max=False, group_by_length=True) == 128
    lengths = [10] * 90 + [500] * 10
    grouped = throughput.padded_tokens_per_row(lengths, 256, 16, pad_to_max=False, group_by_length=True)
    random = throughput.padded_tokens_per_row(lengths, 256, 16, pad_to_max=False, group_by_length=False)
    assert 30 < grouped < random < 256  # sorted batches pad less than random ones
    assert throughput.model_size("bert-base-uncased").params == pytest.approx(110e6, rel=0.02)
    assert throughput.model_size("distilbert-base-uncased").params == pytest.approx(66.96e6, rel=0.02)
    assert throughput.model_size("google/bert_uncased_L-4_H-256_A-4").layers == 4
    assert throughput.model_size("someone/my-large-encoder").source == "name"
    assert throughput.model_size("./my_model").source == "assumed"


# ---- rows known or not -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, why", [
    (lambda: sft.Dataset.from_s3(train="s3://b/t/"), "is not read before launch"),
    (lambda: sft.Dataset.from_hub("stanfordnlp/imdb"), "has no sample size"),
])
def test_without_rows_the_estimate_says_why_and_how(dataset, why):
    job = sft.Job.from_dataset(dataset()).map_labels({0: "neg", 1: "pos"})
    est = job.plan(instance="ml.g5.xlarge").estimate
    assert est.seconds is None and est.cost is None and est.kind == "none"
    assert why in est.basis and "train_rows=" in est.basis and why in str(job.plan(instance="ml.g5.xlarge"))
    assert job.plan(instance="ml.g5.xlarge", train_rows=50_000).estimate.available
    with pytest.raises(sft.ConfigError, match="train_rows must be a whole number"):
        job.plan(instance="ml.g5.xlarge", train_rows=0)


def test_rows_known_from_a_sample_or_a_dataframe():
    import pandas as pd

    hub = sft.Job.from_dataset(sft.Dataset.from_hub("stanfordnlp/imdb").sample(train=5000))
    assert hub.plan(instance="ml.g5.xlarge").estimate.train_rows == 5000
    frame = pd.DataFrame({"text": ["a fine film " * 20, "bad"] * 500, "label": [1, 0] * 500})
    est = sft.Job.from_dataset(sft.Dataset.from_pandas(frame)).plan(instance="ml.g5.xlarge").estimate
    assert est.train_rows == 900 and "DataFrame" in est.basis  # 10% carved out for the test split
    example = sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=400, test=200, seed=1))
    assert example.plan(instance="ml.g5.xlarge").estimate.train_rows == 400


def test_max_steps_fixes_the_steps_whatever_the_rows():
    job = imdb(max_steps=84)
    assert job.plan(instance="ml.g5.xlarge").estimate.steps == 84
    assert job.plan(instance="ml.g5.xlarge", train_rows=10**6).estimate.steps == 84
    assert contract.parse_hyperparameters({"max_steps": "84"})["max_steps"] == 84
    with pytest.raises(sft.ConfigError, match="max_steps=-1 must be >= 0"):
        imdb(max_steps=-1)


# ---- local ---------------------------------------------------------------------------------------------------------
def test_local_plan_without_a_measured_speed_is_rough_and_says_how_to_measure_it():
    est = imdb().plan().estimate
    assert est.kind == "rough" and est.seconds > 0 and "sft.measure_speed(job)" in est.basis


def test_local_estimate_from_a_measured_speed():
    job = sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=400, test=200, seed=1)).hyperparameters(
        epochs=3, batch_size=16)
    est = job.plan(local_speed=speed()).estimate
    steps = 3 * 25
    evals = 3 * 200 + 200  # after each epoch, and the final test
    assert est.steps == steps and est.kind == "measured here"
    assert est.seconds == pytest.approx(8 + steps * 0.25 + 3 * 0.5 + evals * 0.01 + 2)
    assert est.cost == 0 and est.seconds_low < est.seconds < est.seconds_high
    two = job.plan(nodes=2, local_speed=speed(step_s=0.2)).estimate
    assert two.steps == 3 * 13
    with pytest.raises(sft.ConfigError, match="local_speed must come from sft.measure_speed"):
        job.plan(local_speed=3)


def test_probe_lines_are_timed_into_a_speed():
    lines = [(1.0, "[sagefinetune] rows: train 256")]
    lines += [(10.0 + i * 0.5, contract.progress_line(i, 16)) for i in range(1, 17)]
    lines += [(18.5, contract.metric_line("train_runtime", 9.0, 16, 2.0)),
              (19.5, contract.metric_line("eval_loss", 1.0, 16, 2.0)), (19.6, contract.metric_line("eval_f1", 0.5, 16, 2.0)),
              (22.0, "[sagefinetune] done in 12.0s")]
    measured = timings(lines, 23.0, {"eval_runtime": 0.5, "eval_samples_per_second": 200.0}, {"model": "m"})
    assert measured.step_s == pytest.approx(0.5) and measured.startup_s == pytest.approx(10.0)
    assert measured.save_s == pytest.approx(0.5) and measured.eval_row_s == pytest.approx(1.0 / 100)
    assert measured.final_s == pytest.approx(23.0 - 19.6) and measured.probe_steps == 16
    assert LocalSpeed.from_dict(json.loads(json.dumps(measured.to_dict()))) == measured


def test_planning_imports_nothing_heavy():
    code = ("import sys, sagefinetune as sft; "
            "j = sft.Job.from_dataset(sft.Dataset.example('imdb')); "
            "print(j.plan(instance='ml.g5.12xlarge', nodes=2).estimate.seconds); "
            "sft.Grid(j).over(nodes=[1, 2], instance=['ml.g5.xlarge']).plans(); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'sagemaker', 'scipy', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert float(out[0]) > 0 and out[1] == "[]"


@pytest.mark.parametrize("module", ["cost.throughput", "cost.estimate", "grid.grid"])
def test_docstring_examples_of_the_estimate_modules(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"sagefinetune.{module}")
    result = doctest.testmod(mod, extraglobs={"sft": sft, "Dataset": sft.Dataset, "Job": sft.Job})
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.slow
def test_the_probe_and_max_steps_run_on_transformers_4_56(tmp_path, monkeypatch):
    """The probe stops the entry point with max_steps; the V100 image's transformers 4.56 must honour it too."""
    from conftest import env_python, small_job

    python = env_python("SFT_COMPAT_PYTHON")
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    measured = sft.measure_speed(small_job(), python=python, progress=False)
    assert measured.probe_steps == 16 and 0 < measured.step_s < measured.probe_seconds
