"""Every model folder is served by SageMaker's Hugging Face inference container, with its code/inference.py.

The container's serving stack runs in a venv of its own (its toolkit pins numpy < 2 and pulls librosa): the
sagemaker-huggingface-inference-toolkit's HuggingFaceHandlerService, loaded by multi-model-server's own model loader
and answering through MMS's worker Service, on the transformers of the inference image that images.py pairs with
the V100 training image (4.51.3). The model is trained on that training image's transformers (4.56.2). CI builds
both venvs (.ci/run) and names their Pythons in SFT_HFI_PYTHON and SFT_COMPAT_PYTHON; elsewhere this is skipped
(and fails under CI=true: conftest.skip_or_fail).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import env_python, skip_or_fail

from sagefinetune.entrypoint import inference as handler
from sagefinetune.facts import images

HFI = os.environ.get("SFT_HFI_PYTHON")
HERE = Path(__file__).resolve().parents[1]  # tests/, where hfi_serve.py is
SPORT = "The striker scored twice as the club won the cup final at the stadium."
BUSINESS = "Shares fell sharply after the bank issued a profit warning to investors."

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def hfi_python():
    """SFT_HFI_PYTHON: skipped where it is not set, a failure under CI=true."""
    return env_python("SFT_HFI_PYTHON")


def serve_in_container(model_dir, requests, tmp_path):
    """The container's answers, in fp32 (SFT_PRECISION): two transformers versions are held to the same scores within
    1e-4, which their bf16 does not meet."""
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(requests))
    done = subprocess.run([HFI, str(HERE / "hfi_serve.py"), str(model_dir), str(path)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1", "SFT_PRECISION": "fp32"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_model_trained_on_4_56_is_served_by_the_4_51_inference_container(tf456_run, tmp_path):
    pair = next(p for p in images.IMAGE_PAIRS if p.transformers == "4.56.2")
    json_request = {"content_type": "application/json", "body": json.dumps({"inputs": [SPORT, BUSINESS, "word " * 3000]})}
    requests = [
        json_request,
        {"content_type": "application/json", "accept": "application/jsonlines",
         "body": json.dumps({"inputs": SPORT, "parameters": {"top_k": 2}})},
        {"content_type": "application/json", "body": '{"inputs": ["a"'},
        {"content_type": "application/xml", "body": "<inputs/>"},
        {"content_type": "application/json", "body": json.dumps({"inputs": [[SPORT, BUSINESS]]})},
        {"content_type": "application/jsonlines", "accept": "application/jsonlines",
         "body": json.dumps({"inputs": SPORT}) + "\n" + json.dumps(BUSINESS) + "\n"},
        {"content_type": "text/csv", "body": f'"{SPORT}"\n"{BUSINESS}"\n'},
        json_request,
        {"content_type": "application/json", "body": "[" * 50_000 + "]" * 50_000},
        {"content_type": "application/json", "body": json.dumps({"inputs": [SPORT] * (handler.DEFAULT_MAX_INPUTS + 1)})},
    ]
    out = serve_in_container(tf456_run.model_dir, requests, tmp_path)
    assert out["transformers"] == pair.inference_transformers == "4.51.3"
    answers = out["answers"]

    first = json.loads(answers[0]["body"])
    assert answers[0]["status"] == 200 and answers[0]["content_type"] == "application/json"
    assert [a["label"] for a in first[:2]] == ["sports", "business"]  # it learned, and the long text was truncated
    here = handler.predict_fn(handler.input_fn(requests[0]["body"], "application/json"),
                              handler.load(str(tf456_run.model_dir), "fp32"))  # this process's transformers (5.x)
    assert [a["label"] for a in first] == [h["label"] for h in here]
    assert all(abs(a["score"] - h["score"]) < 1e-4 for a, h in zip(first, here))

    top = json.loads(answers[1]["body"])  # JSON Lines: one line for the one input
    assert answers[1]["content_type"] == "application/jsonlines" and [t["label"] for t in top][:1] == ["sports"]
    assert len(top) == 2
    # the container answers 400 for every error, with the handler's message
    assert answers[2]["code"] == 400 and "malformed JSON" in answers[2]["message"]
    assert answers[3]["code"] == 400 and "'application/xml' is not served" in answers[3]["message"]
    assert answers[4]["code"] == 400 and "one text per input" in answers[4]["message"]
    lines = [json.loads(line) for line in answers[5]["body"].splitlines()]
    assert [x["label"] for x in lines] == ["sports", "business"]
    assert [x["label"] for x in json.loads(answers[6]["body"])] == ["sports", "business"]
    assert answers[7]["status"] == 200 and json.loads(answers[7]["body"]) == first  # still serving after the errors
    # the request limits hold in the container too (its 400 carries the handler's message)
    assert answers[8]["code"] == 400 and "nested more than 8 deep" in answers[8]["message"]
    assert answers[9]["code"] == 400 and f"at most {handler.DEFAULT_MAX_INPUTS:,} per request" in answers[9]["message"]


def test_the_container_serves_the_int8_export_that_serving_json_chose(trained_run, tmp_path):
    """A CPU container serves the int8 ONNX export where the check at deploy chose it: onnxruntime comes from the
    archive's code/requirements.txt, which the toolkit pip-installs at model load (hfi_serve.py loads the model as
    MMS does, without that install: the venv holds onnxruntime already, as .ci/run builds it)."""
    import shutil

    from sagefinetune.runtime.serving_check import check_serving

    check = subprocess.run([HFI, "-c", "import onnxruntime"], capture_output=True)
    if check.returncode:
        skip_or_fail("SFT_HFI_PYTHON has no onnxruntime (.ci/run installs it into .venv-hfi)")
    model = tmp_path / "run" / "model"
    shutil.copytree(trained_run.model_dir, model)
    shutil.copytree(trained_run.run_dir / "input" / "data", tmp_path / "run" / "input" / "data")
    record = check_serving(model)
    if record["runtime"] != "onnx":
        print(record["why"])  # shown with the skip under -rs
        pytest.skip("the int8 export was not chosen on this model")
    assert "onnxruntime" in (model / "code" / "requirements.txt").read_text()
    path = tmp_path / "requests.json"
    path.write_text(json.dumps([{"content_type": "application/json", "body": json.dumps({"inputs": [SPORT, BUSINESS]})}]))
    done = subprocess.run([HFI, str(HERE / "hfi_serve.py"), str(model), str(path)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # no SFT_PRECISION: the defaults
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[sagefinetune] serving ONNX Runtime int8" in done.stdout + done.stderr
    answer = json.loads(json.loads(done.stdout.strip().splitlines()[-1])["answers"][0]["body"])
    here = handler.predict_fn(handler.input_fn(json.dumps({"inputs": [SPORT, BUSINESS]}), "application/json"),
                              handler.load(str(model)))  # this process: the int8 export too
    assert [a["label"] for a in answer] == [h["label"] for h in here] == ["sports", "business"]
    assert all(abs(a["score"] - h["score"]) < 1e-3 for a, h in zip(answer, here))
