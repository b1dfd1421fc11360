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
    assert "2 node(s) x 4 process(es)" in out and "spot         on" in out and "not launched" in out


@pytest.mark.slow
def test_serve_locally_example_answers_over_http_and_writes_predictions(trained_run, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "serve_locally.py"), str(trained_run.run_dir)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, check=True).stdout
    assert "<Endpoint local-bbc-" in out and "sports" in out and "POST /invocations -> 200" in out
    assert "[sagefinetune] deleted local endpoint" in out
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["label"] for line in lines][:2] == ["sports", "business"]
