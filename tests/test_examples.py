"""The examples run as users run them (the quickstart's real fine-tune runs in .ci/run)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_sagemaker_example_prints_the_plan_without_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SAGEMAKER_ROLE"}
    env.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_on_sagemaker.py")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "1 node(s) x 1 process(es)" in out and "spot         on" in out and "not launched" in out
    assert "search       the cheapest of 128 setups" in out and "deadline 30m and budget $2.00" in out
    assert "is the cheapest of 64 setups searched" in out  # the setup the estimate calls sensible
    own = subprocess.run([sys.executable, str(ROOT / "examples" / "train_on_sagemaker.py"), "--instance", "ml.g5.12xlarge",
                          "--nodes", "2"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "2 node(s) x 4 process(es)" in own and "the cost of the cheapest of 64 setups" in own and "not sensible" in own


@pytest.mark.slow
def test_serve_locally_example_answers_over_http_and_writes_predictions(trained_run, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "serve_locally.py"), str(trained_run.run_dir)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, check=True).stdout
    assert "<Endpoint local-bbc-" in out and "sports" in out and "POST /invocations -> 200" in out
    assert "[sagefinetune] deleted local endpoint" in out
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["label"] for line in lines][:2] == ["sports", "business"]


@pytest.mark.slow
def test_tune_and_diagnose_example_runs_a_study_and_reads_it_back(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SAGEMAKER_ROLE"}
    env.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    script = [sys.executable, str(ROOT / "examples" / "tune_and_diagnose.py"), str(tmp_path / "out")]
    out = subprocess.run(script, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=True).stdout
    assert "best eval_f1" in out and "diagnosis of trial-" in out and "not launched" in out
    assert "SageMaker hyperparameter tuning job on ml.g5.xlarge" in out and "total cost" in out
    assert (tmp_path / "out" / "tuning.png").exists() and (tmp_path / "out" / "best-curves.png").exists()
    again = subprocess.run(script, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True)
    assert again.stdout.split("best eval_f1")[1].splitlines()[0] == out.split("best eval_f1")[1].splitlines()[0]


def test_pipeline_example_prints_the_sagemaker_pipeline_without_an_account(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SAGEMAKER_ROLE"}
    env.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "pipeline.py"), "--no-local"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    for piece in ("Train             Training", "Evaluate          Processing", "Register          RegisterModel",
                  "Fail              Fail", "parameter MinEvalF1", "default 0.85", "eval_f1 >= 0.85"):
        assert piece in out, piece
    assert (tmp_path / "moderation-pipeline.json").stat().st_size > 10_000


def test_real_data_example_plans_the_card_call_and_reads_a_sample_from_a_hub(hub_server, tmp_path):
    import hub_datasets

    hub_datasets.serve_amazon_copy(hub_server, rows=300)
    script = [sys.executable, str(ROOT / "examples" / "real_data.py")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HF_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_UPDATE_DOWNLOAD_COUNTS="0", HF_HUB_DISABLE_TELEMETRY="1")
    plan = subprocess.run(script, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    assert "mteb/AmazonReviewsClassification@6b5d328 (pinned), all languages" in plan.stdout
    assert "1 node(s) x 8 process(es)" in plan.stdout and "spot         on" in plan.stdout
    assert "1200000 rows" in plan.stdout and "no rows read" in plan.stdout and not (tmp_path / "hf").exists()

    out = subprocess.run(script + ["--hub", hub_server.url, "--rows", "150"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=True)
    assert "sample: train 150 rows, validation 50 rows, test 50 rows" in out.stdout
    assert "at the pinned revision 6b5d328eaae8ef408dd7d775040245cf86f92e9d" in out.stderr
    assert "negative" in out.stdout and "neutral" in out.stdout and "positive" in out.stdout


def test_deploy_example_prints_the_endpoint_plan_without_an_account(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("SAGEMAKER_ROLE",
                                                                                        "SFT_SCHEDULER_ROLE")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "deploy_on_sagemaker.py")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "realtime endpoint me-imdb-minilm-ep-" in out and "1 x ml.m5.xlarge" in out
    assert "  scaling  1..4 instances, target 2600 invocations per instance per minute" in out
    assert "  expires  8h after it is created" in out and "$SFT_SCHEDULER_ROLE" in out and "not deployed" in out


@pytest.mark.slow
def test_track_with_mlflow_example_logs_a_run_and_reads_it_back(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "track_with_mlflow.py"), str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900, check=True).stdout
    assert "tracking     mlflow sqlite:///" in out and "experiment='news'" in out
    assert "loss by step: [(1, " in out and "eval_f1 by step: [(4, " in out and "cost: 0.0" in out
    assert "'confusion_matrix.png'" in out and "'model_card'" in out
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
