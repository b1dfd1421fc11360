"""The container contract, tested: SageMaker's own driver runs our entry point on a SageMaker-shaped /opt/ml.

Each test makes one real ``fit()`` against the moto server, builds ``/opt/ml`` from the CreateTrainingJob request
(as sent) and the S3 objects that fit uploaded, and runs the request's ContainerEntrypoint: the SDK's
``sm_train.sh`` -> ``environment.py`` (which writes every hyperparameter into a shell file that is sourced) ->
the basic or torchrun driver -> our ``train.py``. See tests/container.py for what differs from an instance.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import aws
import container
import pytest
from conftest import skip_or_fail

import sagefinetune as sft
from sagefinetune.entrypoint import checkpoints

pytestmark = pytest.mark.slow

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
COMPAT = os.environ.get("SFT_COMPAT_PYTHON")  # the V100 image's transformers 4.56.2 (CI builds it)
# class names that a shell, JSON or a careless quote would break; they used to kill the job (issue 6)
HOSTILE = ["children's books", 'say "hi"', "$HOME", "back\\slash", "naïve café"]
SETTINGS = {"epochs": 2, "batch_size": 8, "learning_rate": 2e-4, "max_length": 32}


@pytest.fixture
def opt_ml():
    """/opt/ml for one test: skipped when it cannot be ours (a failure under CI=true); the whole tree is removed
    afterwards."""
    reason = container.why_not_usable()
    if reason:
        skip_or_fail(reason)
    with container.claim() as root:
        yield root


def bbc_frames(train: int, test: int, seed: int = 1):
    """BBC News rows as pandas DataFrames with the category names as labels."""
    dd = sft.Dataset.example("bbc_news").sample(train=train, test=test, seed=seed).load()
    names = dd["train"].features["label"].names
    return {split: dd[split].to_pandas().assign(label=lambda f: [names[i] for i in f["label"]]) for split in dd}, names


def launch(moto, job, instance):
    """A real fit against moto: the run, the request as sent, and an S3 client."""
    run = job.fit(instance=instance, role=aws.ROLE, bucket=aws.BUCKET, boto_session=moto.session(), progress=False)
    return run, moto.sent["CreateTrainingJob"][-1], moto.session().client("s3")


def check_outputs(root, request, log_text, labels):
    """What every finished container run leaves: the model for the labels, no checkpoints, metrics SageMaker reads."""
    model = root / "model"
    assert not (root / "output" / "failure").exists()
    files = {p.name for p in model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "sagefinetune.json"} <= files, files
    assert not [f for f in files if f.startswith("checkpoint")] and "training_args.bin" not in files
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    assert [config["id2label"][str(i)] for i in range(len(labels))] == labels  # the exact names, byte for byte
    assert json.loads((model / "sagefinetune.json").read_text(encoding="utf-8"))["labels"] == labels
    metrics = json.loads((model / "metrics.json").read_text())
    # the metric definitions as sent (moto overwrites its stored copy), read from the log as SageMaker reads it
    series = container.metric_series(request["AlgorithmSpecification"]["MetricDefinitions"], log_text)
    for name in ("loss", "learning_rate", "eval_loss", "eval_accuracy"):
        assert series[name], f"no {name} in the log"
    final = {name: values[-1] for name, values in series.items() if name in metrics}
    assert set(final) >= {"eval_accuracy", "eval_f1", "eval_mcc", "train_loss", "train_runtime", "epoch"}, final
    assert final == {name: metrics[name] for name in final}
    assert (root / "output" / "data" / "classification_report.json").exists()
    return metrics


def test_one_process_under_the_basic_driver_with_hostile_class_names(moto, opt_ml, tmp_path):
    frames, names = bbc_frames(train=64, test=32)
    job = (sft.Job.from_dataset(sft.Dataset.from_pandas(frames))
           .map_labels(dict(zip(names, HOSTILE))).model(MODEL, num_hidden_layers=2)
           .hyperparameters(**SETTINGS, truncation="head+tail"))  # truncation.py travels beside train.py
    run, request, s3 = launch(moto, job, "ml.g5.xlarge")  # one GPU: no torchrun
    container.build(request, s3)
    log = tmp_path / "container.log"

    assert container.run(request, log) == 0, log.read_text()[-3000:]
    text = log.read_text(encoding="utf-8")
    assert "Running Basic Script driver" in text and "1 process(es)" in text
    sourced = (opt_ml / "input" / "sm_training.env").read_text(encoding="utf-8")
    assert "children%27s books" in sourced  # the ' travelled %-encoded through the sourced shell file
    metrics = check_outputs(opt_ml, request, text, HOSTILE)
    assert metrics["train_global_step"] == 2 * 64 / 8
    settings = json.loads((opt_ml / "model" / "sagefinetune.json").read_text(encoding="utf-8"))
    assert settings["truncation"] == "head+tail" and settings["max_length"] == 32 and "truncation head+tail" in text
    assert {p.name for p in (opt_ml / "model" / "code").iterdir()} == {"inference.py", "request_body.py", "serving_choice.py",
                                                                          "truncation.py"}

    # SageMaker's next steps: /opt/ml/model as model.tar.gz, the log in CloudWatch; the user downloads and attaches
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for f in sorted((opt_ml / "model").iterdir()):
            tar.add(f, arcname=f.name)
    bucket, key = container.s3_prefix(run.model_artifact)
    s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    put_log(moto, run.name, text)
    attached = sft.TrainingRun.attach(run.name, boto_session=moto.session())
    assert {k: attached.metrics[k] for k in ("eval_accuracy", "train_loss")} == {
        k: metrics[k] for k in ("eval_accuracy", "train_loss")}
    attached.download(tmp_path / "downloaded")
    predicted = attached.predictor().predict(["The striker scored twice in the cup final.", "Shares fell 3%."])
    assert {p["label"] for p in predicted} <= set(HOSTILE)


def put_log(moto, job_name, text):
    logs = moto.session().client("logs")
    group, stream = "/aws/sagemaker/TrainingJobs", f"{job_name}/algo-1-{int(time.time())}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(text.splitlines()) if line.strip()]
    for i in range(0, len(events), 5000):
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i:i + 5000])


# raw label values and column names as a user's files may hold them: each needs quoting somewhere
RAW = ["it's business", '"showbiz"', "$POLITICS", "sp\\orts", "tëch"]
TEXT_COLUMN, LABEL_COLUMN = "reviewer's text", "the label"


def put_s3_csv(moto, frames, names):
    """The rows as CSV files in another bucket, with an apostrophe in a column name and hostile raw label values."""
    s3 = moto.session().client("s3")
    s3.create_bucket(Bucket="corp-data")
    raw = dict(zip(names, RAW))
    for split, frame in frames.items():
        body = frame.assign(label=frame["label"].map(raw)).rename(columns={"text": TEXT_COLUMN, "label": LABEL_COLUMN})
        s3.put_object(Bucket="corp-data", Key=f"news/{split}/part-0.csv", Body=body.to_csv(index=False).encode())
    return sft.Dataset.from_s3(train="s3://corp-data/news/train/", test="s3://corp-data/news/test/").columns(
        text=TEXT_COLUMN, label=LABEL_COLUMN)


def test_torchrun_with_two_processes_on_from_s3_data_with_hostile_columns_and_label_keys(moto, opt_ml, tmp_path):
    frames, names = bbc_frames(train=64, test=32, seed=2)
    data = put_s3_csv(moto, frames, names)
    job = (sft.Job.from_dataset(data).map_labels(dict(zip(RAW, HOSTILE)))
           .model(MODEL, num_hidden_layers=2).hyperparameters(**SETTINGS))
    # 4 GPUs: the SDK's Torchrun driver. With the V100 image's transformers at hand (CI's SFT_COMPAT_PYTHON), the
    # ml.p3.8xlarge plan (that image) runs on it; else the ml.g5.12xlarge plan (transformers 5.x) on the installed 5.x
    instance, bin_dir = ("ml.p3.8xlarge", Path(COMPAT).parent) if COMPAT else ("ml.g5.12xlarge", container.VENV_BIN)
    run, request, s3 = launch(moto, job, instance)
    # no GPUs here: two CPU processes (gloo) stand in for the four GPUs the plan counted
    container.build(request, s3, process_count_per_node=2)
    log = tmp_path / "container.log"

    assert container.run(request, log, bin_dir) == 0, log.read_text()[-3000:]
    text = log.read_text(encoding="utf-8")
    assert "Running Torchrun Driver" in text and "torchrun --nnodes=1 --nproc_per_node=2" in text
    assert "2 process(es)" in text and (not COMPAT or "transformers 4.56.2" in text)
    assert "find_unused_parameters=True" not in text  # DDP's search for unused parameters is off
    # one copy of each bar and loading report, from the main process (they were printed once per process)
    assert text.count("tokenize train:   0%") == 1
    assert text.count("LOAD REPORT") + text.count("were not initialized from the model checkpoint") == 1
    metrics = check_outputs(opt_ml, request, text, HOSTILE)
    assert metrics["train_global_step"] == 2 * 64 / (8 * 2)


def test_a_killed_job_resumes_from_its_newest_complete_checkpoint(moto, opt_ml, tmp_path):
    frames, names = bbc_frames(train=48, test=16, seed=3)
    job = (sft.Job.from_dataset(sft.Dataset.from_pandas(frames)).map_labels(dict(zip(names, HOSTILE)))
           .model(MODEL, num_hidden_layers=2).hyperparameters(**{**SETTINGS, "epochs": 3}))  # 6 steps an epoch
    run, request, s3 = launch(moto, job, "ml.g5.xlarge")
    container.build(request, s3)
    ckpt = container.checkpoint_dir(request)
    log = tmp_path / "container.log"

    def complete():
        return [p for p in ckpt.glob("checkpoint-*") if not checkpoints.missing_parts(p)]

    proc = container.start(request, log)
    try:
        assert container.wait_for(complete, proc, timeout=600), log.read_text()[-3000:]
    finally:
        container.kill(proc)  # the instance is gone: the driver, the script and its children at once
    assert proc.returncode != 0 and not (opt_ml / "model" / "metrics.json").exists()

    # SageMaker restarts the job on a fresh instance and syncs the checkpoints back from S3
    container.rebuild_keeping_checkpoints(request, s3, opt_ml, tmp_path)
    newest = checkpoints.newest_complete_checkpoint(str(ckpt), remove_incomplete=False)
    log.write_text("")
    assert container.run(request, log) == 0, log.read_text()[-3000:]
    text = log.read_text(encoding="utf-8")
    assert f"resuming from {newest}" in text
    resumed_from = int(newest.rsplit("-", 1)[1])
    first_step = int(text.split("[sagefinetune] progress step=")[1].split()[0])
    assert first_step > resumed_from  # the steps before the checkpoint were not trained again
    metrics = check_outputs(opt_ml, request, text, HOSTILE)
    assert metrics["train_global_step"] == 3 * 48 / 8  # where an uninterrupted run ends


def test_a_value_that_breaks_the_drivers_shell_file_fails_the_job_with_a_failure_file(moto, opt_ml, tmp_path, monkeypatch):
    """The harness sees what SageMaker would: without the %-encoding, a ' in a class name kills the job at once."""
    from sagefinetune.entrypoint import contract

    monkeypatch.setattr(contract, "encode_value", lambda text: text)  # the SDK's own quoting alone, as before
    frames, names = bbc_frames(train=40, test=20)
    job = (sft.Job.from_dataset(sft.Dataset.from_pandas(frames)).map_labels(dict(zip(names, HOSTILE)))
           .model(MODEL, num_hidden_layers=2).hyperparameters(**SETTINGS))
    run, request, s3 = launch(moto, job, "ml.g5.xlarge")
    assert "children's books" in request["HyperParameters"]["labels"]
    container.build(request, s3)
    log = tmp_path / "container.log"

    assert container.run(request, log) != 0
    text = log.read_text(encoding="utf-8")
    assert "sm_training.env" in text and "not a valid identifier" in text
    assert "Running Basic Script driver" not in text  # it died while sourcing, before our script started
    assert run.name in (opt_ml / "output" / "failure").read_text()


def test_an_error_in_our_script_becomes_the_jobs_failure_reason(moto, opt_ml, tmp_path, monkeypatch):
    """SageMaker's FailureReason is /opt/ml/output/failure: it must say what went wrong, not how the driver called us."""
    from sagefinetune.backends.sagemaker import s3_labels

    # fit reads labels from S3 before launch, up to a byte budget a channel; a budget of 0 stands for rows beyond it
    monkeypatch.setattr(s3_labels, "BUDGET", 0)
    s3 = moto.session().client("s3")
    s3.create_bucket(Bucket="corp-data")
    for split in ("train", "test"):  # a star 3 the map does not name, in rows the launch check did not read
        s3.put_object(Bucket="corp-data", Key=f"reviews/{split}/part-0.csv",
                      Body=b"body,stars\ngreat film,5\nawful,1\nso-so,3\n")
    data = sft.Dataset.from_s3(train="s3://corp-data/reviews/train/", test="s3://corp-data/reviews/test/").columns(
        text="body", label="stars")
    job = sft.Job.from_dataset(data).map_labels({1: "it's bad", 5: "good"}).model(MODEL, num_hidden_layers=2)
    run, request, s3 = launch(moto, job, "ml.g5.xlarge")
    container.build(request, s3)
    log = tmp_path / "container.log"

    assert container.run(request, log) != 0
    reason = (opt_ml / "output" / "failure").read_text(encoding="utf-8")
    # before: the driver's own traceback, "Command '[...train.py', '--model_name_or_path', ...]' returned non-zero
    # exit status 1.", every hyperparameter and no cause
    assert reason.startswith("ValueError: label value 3 in column 'stars' is not in the label map ['1', '5']"), reason
    assert "Fix:" in reason and "CalledProcessError" not in reason and len(reason) <= 1024


def test_class_weights_and_early_stopping_under_the_basic_driver(moto, opt_ml, tmp_path):
    """class_weights with hostile class names travel through the driver's sourced shell file as JSON; early stopping
    watches the validation channel carved at fit, and the model written to /opt/ml/model is the best checkpoint."""
    from safetensors.torch import load_file

    frames, names = bbc_frames(train=64, test=16, seed=4)
    weights = {"children's books": 2.0, "$HOME": 0.5, 'say "hi"': 1.5}
    job = (sft.Job.from_dataset(sft.Dataset.from_pandas(frames)).map_labels(dict(zip(names, HOSTILE)))
           .model(MODEL, num_hidden_layers=2)
           .hyperparameters(**{**SETTINGS, "epochs": 4}, class_weights=weights, early_stopping=1))
    run, request, s3 = launch(moto, job, "ml.g5.xlarge")
    assert {c["ChannelName"] for c in request["InputDataConfig"]} >= {"train", "validation", "test"}
    container.build(request, s3)
    log = tmp_path / "container.log"

    assert container.run(request, log) == 0, log.read_text()[-3000:]
    text = log.read_text(encoding="utf-8")
    assert "Running Basic Script driver" in text and "rows: train 58, validation 6, test 16" in text
    assert ("class weights of the cross-entropy (as given): children's books 2, say \"hi\" 1.5, $HOME 0.5, "
            "back\\slash 1, naïve café 1") in text
    assert "early stopping: after 1 evaluations without a better eval_f1 on the validation split" in text
    outcome = text.split("[sagefinetune] early stopping: ")[2].splitlines()[0]
    best = int(outcome.split("the model is checkpoint-")[1].split(",")[0])
    metrics = check_outputs(opt_ml, request, text, HOSTILE)
    assert f"at step {int(metrics['train_global_step'])} of 32;" in outcome
    model = load_file(str(opt_ml / "model" / "model.safetensors"))
    kept = load_file(str(container.checkpoint_dir(request) / f"checkpoint-{best}" / "model.safetensors"))
    assert all((model[k] == kept[k]).all() for k in model)  # the best checkpoint's weights, whichever step it was
