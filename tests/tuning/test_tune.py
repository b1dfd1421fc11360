"""Tuning: the search space and plan (pure), real local studies through the entry point, SageMaker's tuner on moto."""

from __future__ import annotations

import doctest
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import aws
import pytest
from conftest import MODEL, SAVE_ONCE

import sagefinetune as sft
import sagefinetune.plans.space
from sagefinetune.entrypoint import checkpoints, contract


def tiny_job(**hp):
    """A study-sized fine-tune: 160 BBC News rows, 2 of MiniLM's layers, 48 tokens, 2 epochs of 20 steps; one checkpoint,
    written at the end (conftest.SAVE_ONCE) unless ``save_steps`` is given, and kept alone.

    Measured (2 cores, loaded): learning rate 1e-6 and 1e-4 stay at chance (eval_f1 0.07), 3e-4 reaches 0.32,
    8e-4 reaches 0.91; after the first epoch 8e-4 is at 0.61 and 1e-6 at 0.07.
    """
    settings = {"epochs": 2, "batch_size": 8, "learning_rate": 8e-4, "max_length": 48, "save_total_limit": 1,
                **SAVE_ONCE, **hp}
    return (sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=160, test=80, seed=1))
            .model(MODEL, num_hidden_layers=2).hyperparameters(**settings))


SPACE = {"learning_rate": sft.LogUniform(1e-5, 3e-4), "batch_size": sft.Choice([16, 32]), "max_length": sft.Choice([64, 128])}


# ---- pure: spaces and plans ------------------------------------------------------------------------------------
def test_docstring_examples():
    assert doctest.testmod(sagefinetune.plans.space).failed == 0


@pytest.mark.parametrize("space, message", [
    ({"learning_rate": sft.LogUniform(1e-5, 2)}, r"space\['learning_rate'\] = LogUniform\(1e-05, 2.0\): .*must be in \(0, 1\)"),
    ({"batch_size": sft.Uniform(8, 64)}, r"batch_size takes whole numbers.*Fix: IntRange\(8, 64\)"),
    ({"lr": sft.LogUniform(1e-5, 1e-3)}, "unknown hyperparameter 'lr'"),
    ({"precision": sft.Choice(["fp16", "fp8"])}, "precision='fp8' must be one of auto, fp32, fp16, bf16"),
    ({"epochs": sft.IntRange(0, 3)}, r"epochs=0 must be in \(0, 10000\]"),
    ({"learning_rate": 3e-4}, "is not a range"),
    ({}, "non-empty dict"),
])
def test_spaces_are_checked_by_the_hyperparameter_rules(space, message):
    with pytest.raises(sft.ConfigError, match=message):
        tiny_job().tune_plan(space)


@pytest.mark.parametrize("build, message", [
    (lambda: sft.LogUniform(0, 1e-3), "0 < low < high"),
    (lambda: sft.Uniform(0.2, 0.1), "low < high"),
    (lambda: sft.IntRange(2, 2.5), "whole number"),
    (lambda: sft.Choice([]), "non-empty"),
    (lambda: sft.Choice([16, 16]), "must differ"),
])
def test_ranges_check_their_own_ends(build, message):
    with pytest.raises(sft.ConfigError, match=message):
        build()


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "train_loss"}, "running value"),
    ({"objective": "eval_f2"}, "did you mean 'eval_f1'"),
    ({"objective": "eval_loss", "direction": "maximize"}, "worst eval_loss"),
    ({"strategy": "grid"}, "strategy='grid' tries every value"),
    ({"strategy": "bayes"}, "did you mean 'bayesian'"),
    ({"pruner": "median", "strategy": "hyperband"}, "stops trials itself"),
    ({"trials": 0}, "trials must be a whole number >= 1"),
    ({"pruner": "successive_halving", "instance": "ml.g5.xlarge"}, "median rule only"),
    ({"baseline": True, "instance": "ml.g5.xlarge"}, "cannot be told"),
    ({"objective": "eval_f1_micro"}, "not reported for single_label_classification"),
])
def test_bad_study_settings_fail_in_the_plan(kwargs, message):
    job = tiny_job().map_labels(sft.LabelMap.names(["business", "entertainment", "politics", "sports", "tech"]))
    with pytest.raises(sft.ConfigError, match=message):
        job.tune_plan(SPACE, **kwargs)


def test_the_plan_shows_the_study_and_its_total_cost():
    plan = tiny_job().tune_plan(SPACE, trials=8, parallel=2, instance="ml.g5.xlarge", spot=True, max_run="2h",
                                pruner="median")
    text = str(plan)
    assert plan.direction == "maximize" and plan.trials == 8
    assert "SageMaker hyperparameter tuning job on ml.g5.xlarge" in text and "stopping early: median" in text
    assert "at most $22.53 (8 trials x max_run); $2.82/h while 2 run at once" in text  # 8 x 2 h x $1.408
    assert plan.to_dict()["cost"]["ceiling"] == pytest.approx(8 * 2 * 1.408)
    local = tiny_job().tune_plan(SPACE, objective="eval_loss", trials=3, parallel=4)
    assert local.direction == "minimize" and local.parallel == 3 and local.threads_per_trial == max(1, (os.cpu_count() or 1) // 3)
    grid = tiny_job().tune_plan({"batch_size": sft.Choice([8, 16]), "epochs": sft.IntRange(1, 3)}, strategy="grid", trials=20)
    assert grid.trials == 6 and "grid of 6 combinations" in str(grid)


def test_import_stays_light():
    code = ("import sys, sagefinetune as sft; job = sft.Job.from_dataset(sft.Dataset.example('imdb'));"
            "job.tune_plan({'learning_rate': sft.LogUniform(1e-5, 1e-4)}, instance='ml.g5.xlarge');"
            "heavy = [m for m in ('torch', 'transformers', 'datasets', 'sagemaker', 'optuna', 'matplotlib') if m in sys.modules];"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_a_tuning_trial_reads_the_hyperparameters_sagemaker_wrote(tmp_path, monkeypatch):
    sent = {"labels": '["a","b"]', "epochs": "2", "learning_rate": "0.0001", "sagemaker_program": "train.py",
            "sagemaker_submit_directory": "s3://b/sourcedir.tar.gz", "_tuning_objective_metric": "eval_f1"}
    (tmp_path / "hyperparameters.json").write_text(json.dumps(sent))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("SM_HPS", raising=False)
    monkeypatch.setenv("SFT_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    monkeypatch.setenv("TRAINING_JOB_NAME", "sft-tune-001-1a2b3c4d")
    legacy_argv = ["--epochs", "2", "--labels", "['a', 'b']", "--learning_rate", "0.0001"]  # the legacy driver's reprs
    hp = contract.parse_hyperparameters(contract.read_raw_hyperparameters(legacy_argv))
    assert hp["labels"] == ["a", "b"] and hp["learning_rate"] == 1e-4 and hp["epochs"] == 2.0
    assert contract.paths().checkpoint_dir == str(tmp_path / "ckpt" / "sft-tune-001-1a2b3c4d")  # each trial its own

    del sent["_tuning_objective_metric"]  # a plain training job: one checkpoint folder, the command line wins
    (tmp_path / "hyperparameters.json").write_text(json.dumps(sent))
    assert contract.paths().checkpoint_dir == str(tmp_path / "ckpt")
    assert contract.read_raw_hyperparameters(["--epochs", "3"])["epochs"] == "3"


# ---- local studies: real trials through the entry point ------------------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """4 trials, 2 at once; trial 0 is the job's own, deliberately bad, learning rate (1e-6)."""
    folder = tmp_path_factory.mktemp("study") / "lr"
    # seed 6 draws 8.9e-4, 1.2e-5 and 5.1e-4 after the baseline
    tuned = tiny_job(learning_rate=1e-6).tune({"learning_rate": sft.LogUniform(1e-6, 2e-3)}, objective="eval_f1",
                                               trials=4, parallel=2, strategy="random", seed=6, baseline=True,
                                               run_dir=folder, progress=False)
    yield tuned
    shutil.rmtree(folder.parent, ignore_errors=True)  # a module's folder lives until the session ends: not this one's


@pytest.mark.slow
def test_a_study_finds_a_better_learning_rate_than_a_bad_one(study, tmp_path):
    table = study.table
    assert list(table["trial"]) == [0, 1, 2, 3] and set(table["state"]) == {"complete"}
    baseline = table[table["trial"] == 0].iloc[0]
    assert baseline["learning_rate"] == 1e-6
    best_lr = study.best_hyperparameters["learning_rate"]
    assert best_lr > 1e-4 and study.best_value > baseline["eval_f1"] + 0.3, table
    assert study.best_value == table["eval_f1"].max()
    assert study.best_run.metrics["eval_f1"] == study.best_value  # the final evaluation, as the run reported it
    assert study.best_job.hyperparameters_["learning_rate"] == best_lr
    for _, row in table.iterrows():  # each trial in its own run folder, with its own values
        hp = json.loads((study.folder / f"trial-{row['trial']:03d}" / "input" / "config" / "hyperparameters.json").read_text())
        assert float(hp["learning_rate"]) == row["learning_rate"]
    assert {"eval_accuracy", "eval_loss", "seconds", "run_dir"} <= set(table.columns)
    # a finished trial keeps its model, not its resumable state (weights and optimizer: about 240 MB a trial here)
    assert all((study.folder / f"trial-{t:03d}" / "model" / "model.safetensors").exists() for t in table["trial"])
    assert not list(study.folder.glob("trial-*/checkpoints"))
    fig = study.plot(tmp_path / "tuning.png")
    assert (tmp_path / "tuning.png").stat().st_size > 10_000 and len(fig.axes) == 2


@pytest.mark.slow
def test_the_bad_learning_rate_is_diagnosed(study):
    bad = sft.TrainingRun.from_run_dir(study.folder / "trial-000")
    assert "loss_not_decreasing" in bad.diagnose().kinds()


@pytest.mark.slow
def test_a_finished_study_is_read_back_not_run_again(study):
    logs = {p: p.stat().st_mtime for p in study.folder.glob("trial-*/train.log")}
    again = tiny_job(learning_rate=1e-6).tune({"learning_rate": sft.LogUniform(1e-6, 2e-3)}, trials=4, parallel=2,
                                              strategy="random", seed=6, baseline=True, run_dir=study.folder,
                                              progress=False)
    assert again.best_value == study.best_value and len(again.table) == 4
    assert {p: p.stat().st_mtime for p in study.folder.glob("trial-*/train.log")} == logs
    with pytest.raises(sft.ConfigError, match=r"holds another study \(changed: space\)"):
        tiny_job(learning_rate=1e-6).tune({"learning_rate": sft.LogUniform(1e-6, 1e-2)}, run_dir=study.folder, seed=6,
                                          strategy="random", baseline=True)


@pytest.mark.slow
def test_an_interrupted_study_resumes_its_trial_which_is_then_pruned_after_its_first_epoch(tmp_path):
    """One study of two trials (8e-4, then 1e-6) with the median pruner: Ctrl-C stops it in trial 1, after that trial's
    first checkpoint (step 10 of 20 in an epoch); the study run again leaves trial 0 alone, resumes trial 1 from its
    checkpoint, and the pruner stops it after its first epoch, where it is far below trial 0."""
    folder = tmp_path / "study"
    args = ("{'learning_rate': sft.Choice([8e-4, 1e-6])}, strategy='grid', parallel=1, run_dir=%r, progress=False, "
            "pruner=optuna.pruners.MedianPruner(n_startup_trials=1)" % str(folder))
    code = (f"import signal, sys; sys.path[:0] = [{os.path.dirname(__file__)!r}, {os.path.dirname(os.path.dirname(__file__))!r}]\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises, even if the parent ignores it\n"
            "import optuna\nimport sagefinetune as sft\nfrom test_tune import tiny_job\n"
            f"tiny_job(save_steps=10).tune({args})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    second = folder / "trial-001" / "checkpoints"
    deadline = time.time() + 400
    while not (second.exists() and any(not checkpoints.missing_parts(str(p)) for p in second.glob("checkpoint-*"))):
        assert proc.poll() is None, "the study ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: the running trial's process is stopped, its checkpoints kept
    assert proc.wait(timeout=120) != 0
    first_log = (folder / "trial-000" / "train.log").stat().st_mtime
    assert not (folder / "trial-001" / "model" / "metrics.json").exists()

    import optuna

    tuned = tiny_job(save_steps=10).tune({"learning_rate": sft.Choice([8e-4, 1e-6])}, strategy="grid", parallel=1,
                                        pruner=optuna.pruners.MedianPruner(n_startup_trials=1), run_dir=folder,
                                        progress=False)
    table = tuned.table
    assert list(table["state"]) == ["complete", "interrupted", "pruned"], table
    assert (folder / "trial-000" / "train.log").stat().st_mtime == first_log  # the finished trial was not run again
    pruned = table.iloc[2]
    assert pruned["run_dir"] == str(folder / "trial-001")  # the interrupted trial, again, in its own folder
    assert pruned["epochs"] == 1 and pruned["eval_f1"] < table.iloc[0]["eval_f1"]
    why = json.loads((folder / "trial-001" / "pruned.json").read_text())
    assert why["epoch"] == 1 and why["params"] == {"learning_rate": 1e-6} and "median" in why["reason"]
    log = (folder / "trial-001" / "train.log").read_text()
    assert "[sagefinetune] stopped: interrupted" in log and "resuming from" in log
    assert "[sagefinetune] stopped: pruned at epoch 1" in log
    assert not (folder / "trial-001" / "model" / "metrics.json").exists()  # it never reached its second epoch's end


# ---- SageMaker: the tuning job's request, against moto ------------------------------------------------------------
def sm_job():
    return sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1)).hyperparameters(epochs=3)


def test_tuning_job_request_is_what_we_planned(moto):
    space = {"learning_rate": sft.LogUniform(1e-5, 3e-4), "batch_size": sft.Choice([16, 32]), "epochs": sft.IntRange(2, 4),
             "group_by_length": sft.Choice([True, False])}
    tuned = sm_job().tune(space, trials=8, parallel=2, instance="ml.g5.xlarge", spot=True, max_run="2h", pruner="median",
                          role=aws.ROLE, bucket=aws.BUCKET, tags={"team": "nlp"}, boto_session=moto.session(),
                          progress=False, wait=False)
    request = moto.sent["CreateHyperParameterTuningJob"][-1]
    assert request["HyperParameterTuningJobName"] == tuned.name and len(tuned.name) <= 32
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "eval_f1"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2}
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "learning_rate", "MinValue": "1e-05", "MaxValue": "0.0003", "ScalingType": "Logarithmic"}]
    assert ranges["IntegerParameterRanges"] == [{"Name": "epochs", "MinValue": "2", "MaxValue": "4", "ScalingType": "Linear"}]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "batch_size", "Values": ["16", "32"]},
                                                    {"Name": "group_by_length", "Values": ["true", "false"]}]

    definition = request["TrainingJobDefinition"]
    metrics = {m["Name"]: m["Regex"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    assert metrics["eval_f1"] == contract.metric_regex("eval_f1")
    assert float(re.search(metrics["eval_f1"], contract.metric_line("eval_f1", 0.8765, 30, 3.0)).group(1)) == 0.8765
    static = definition["StaticHyperParameters"]
    assert not set(space) & set(static)  # the tuner sets those per trial
    assert static["labels"] == '["business","entertainment","politics","sports","tech"]'
    sent = {k: v for k, v in static.items() if not k.startswith("sagemaker_")}
    # max_length="auto" (the default) arrives as the number chosen from the rows: BBC News articles fill MiniLM's 512
    assert contract.parse_hyperparameters(sent)["max_length"] == 512 and static["sagemaker_program"] == "train.py"
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert definition["CheckpointConfig"]["S3Uri"].endswith(f"/{tuned.name}/")
    assert definition["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    channels = {c["ChannelName"] for c in definition["InputDataConfig"]}
    assert {"train", "test"} <= channels
    assert {"Key": "team", "Value": "nlp"} in request["Tags"]
    assert "CreateTrainingJob" not in moto.sent


def test_the_best_trial_is_read_back(moto):
    from moto.sagemaker.models import sagemaker_backends

    space = {"learning_rate": sft.LogUniform(1e-5, 3e-4), "batch_size": sft.Choice([16, 32])}
    tuned = sm_job().tune(space, trials=4, parallel=2, instance="ml.g5.xlarge", role=aws.ROLE, bucket=aws.BUCKET,
                          boto_session=moto.session(), progress=False, wait=False)
    trial = sm_job().fit(instance="ml.g5.xlarge", role=aws.ROLE, bucket=aws.BUCKET, boto_session=moto.session(),
                         progress=False)  # stands for the best trial's training job (moto runs none)
    moto_job = sagemaker_backends[aws.ACCOUNT][aws.REGION].hyper_parameter_tuning_jobs[tuned.name]
    moto_job.best_training_job = {
        **moto_job.best_training_job, "TrainingJobName": trial.name, "TuningJobName": tuned.name,
        "TunedHyperParameters": {"learning_rate": "0.00012", "batch_size": "32"},
        "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Maximize", "MetricName": "eval_f1", "Value": 0.91},
    }
    done = tuned.wait(progress=False)
    assert done.status == "Completed" and done.best_value == 0.91
    assert done.best_hyperparameters == {"learning_rate": 0.00012, "batch_size": 32}
    assert done.best_job.hyperparameters_["learning_rate"] == 0.00012 and done.best_job.hyperparameters_["epochs"] == 3
    assert done.best_run.name == trial.name and done.best_run.backend == "sagemaker"


def test_a_trials_table_from_sagemaker_summaries():
    from datetime import datetime

    from sagefinetune.backends.sagemaker.tuning import trials_table

    plan = sm_job().tune_plan({"learning_rate": sft.LogUniform(1e-5, 3e-4)}, instance="ml.g5.xlarge")
    t0 = datetime(2026, 11, 1, 10, 0, 0)
    summaries = [
        {"TrainingJobName": "t-002", "TrainingJobStatus": "Stopped", "TunedHyperParameters": {"learning_rate": "1e-05"},
         "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "eval_f1", "Value": 0.2}},
        {"TrainingJobName": "t-001", "TrainingJobStatus": "Completed", "TunedHyperParameters": {"learning_rate": "0.0002"},
         "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "eval_f1", "Value": 0.9},
         "TrainingStartTime": t0, "TrainingEndTime": t0.replace(minute=5)},
    ]
    table = trials_table(plan, summaries)
    assert list(table["trial"]) == ["t-001", "t-002"] and list(table["state"]) == ["complete", "pruned"]
    assert list(table["learning_rate"]) == [0.0002, 1e-05] and table.iloc[0]["seconds"] == 300
