"""SageMaker training from the same Job, against a moto server the tests start (real SDK, real boto3, HTTP)."""

from __future__ import annotations

import io
import re
import tarfile
import time

import aws
import pytest
from conftest import HUB_TOKEN

import sagefinetune as sft
from sagefinetune.entrypoint import channels as entry_channels
from sagefinetune.entrypoint import contract
from sagefinetune.facts import images, instances


def job(**hp):
    settings = {"epochs": 1, "batch_size": 16, "learning_rate": 2.4e-05, **hp}
    return (sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1))
            .hyperparameters(**settings))


def fit(moto, j=None, **options):
    options.setdefault("role", aws.ROLE)
    options.setdefault("bucket", aws.BUCKET)
    return (j or job()).fit(instance=options.pop("instance", "ml.p3.16xlarge"), nodes=options.pop("nodes", 2),
                            boto_session=moto.session(), progress=False, **options)


# ---- the plan: pure ------------------------------------------------------------------------------------
@pytest.mark.parametrize("instance, transformers, gpus, precision", [
    ("ml.p3.16xlarge", "4.56.2", 8, "fp16"),  # V100: no CUDA 13 image
    ("ml.g4dn.xlarge", "5.3.0", 1, "fp16"),   # T4
    ("ml.g5.12xlarge", "5.3.0", 4, "bf16"),   # A10G
])
def test_plan_picks_the_image_and_process_layout_for_the_instance(instance, transformers, gpus, precision):
    plan = job().plan(instance=instance, nodes=2)
    spec = plan.sagemaker
    assert f"transformers{transformers}" in spec.training_image
    assert plan.processes_per_node == gpus and plan.world_size == 2 * gpus and spec.distribution == "torchrun"
    assert spec.precision == precision


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-northeast-3", "cn-north-1"])
def test_image_uris_match_the_sdk_offline(region):
    from sagemaker.core import image_uris

    for pair in images.IMAGE_PAIRS:
        for scope, version, pytorch in (("training", pair.transformers, pair.pytorch),
                                        ("inference", pair.inference_transformers, pair.inference_pytorch)):
            expected = image_uris.retrieve("huggingface", region=region, version=version,
                                           base_framework_version=f"pytorch{pytorch}", py_version="py312",
                                           instance_type="ml.g5.xlarge", image_scope=scope)
            assert images.uri(pair, region, scope) == expected


def test_single_gpu_runs_one_process_without_torchrun():
    plan = job().plan(instance="ml.g5.xlarge")
    assert plan.world_size == 1 and plan.sagemaker.distribution is None


def test_plan_shows_everything_and_is_deterministic():
    plan = job().plan(instance="ml.p3.16xlarge", nodes=2, spot=True, max_run="2h", bucket="my-bucket", tags={"team": "nlp"},
                      subnets=["subnet-1"], security_groups=["sg-1"], network_isolation=False,
                      volume_kms_key="alias/vol", output_kms_key="alias/out", encrypt_inter_node=True)
    text = str(plan)
    for piece in ("huggingface-pytorch-training:2.8.0-transformers4.56.2-gpu-py312-cu129", "2 node(s) x 8 process(es)",
                  "max_run 2h, max_wait 4h", "spot         on", "s3://my-bucket/sagefinetune/checkpoints/sft-all-minilm-l6-v2-",
                  "subnet-1", "inter-node encryption", "alias/vol", "$28.152/h x 2 node(s) = $56.30/h",
                  "spot about $19.71/h (estimate)", "at most $112.61 at max_run", "read 2026-11", "team=nlp",
                  "learning_rate=2.4e-05"):
        assert piece in text, piece
    again = job().plan(instance="ml.p3.16xlarge", nodes=2, spot=True, max_run="2h", bucket="my-bucket", tags={"team": "nlp"},
                       subnets=["subnet-1"], security_groups=["sg-1"], network_isolation=False,
                       volume_kms_key="alias/vol", output_kms_key="alias/out", encrypt_inter_node=True)
    assert again.to_dict() == plan.to_dict()


def test_checkpoints_resume_only_the_same_job_on_the_same_rows(moto):
    def checkpoint(j):
        fit(moto, j)
        return moto.sent["CreateTrainingJob"][-1]["CheckpointConfig"]["S3Uri"]

    first = checkpoint(job())
    assert checkpoint(job()) == first  # relaunch: resumes
    other_rows = sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=2)).hyperparameters(
        epochs=1, batch_size=16, learning_rate=2.4e-05)
    assert checkpoint(other_rows) != first
    assert checkpoint(job(epochs=2)) != first


def test_checkpoint_prefix_is_stable_for_the_same_job_and_differs_for_another():
    a = job().plan(instance="ml.g5.xlarge", bucket="my-bucket").sagemaker.checkpoint_s3
    assert a == job().plan(instance="ml.g5.xlarge", bucket="my-bucket").sagemaker.checkpoint_s3
    assert a != job(epochs=2).plan(instance="ml.g5.xlarge", bucket="my-bucket").sagemaker.checkpoint_s3


@pytest.mark.parametrize("options, error, message", [
    ({"instance": "ml.p3.16xlarg"}, sft.ConfigError, "unknown instance type 'ml.p3.16xlarg'; did you mean 'ml.p3.16xlarge'"),
    ({"instance": "ml.m5.xlarge"}, sft.ImageError, "no GPU.*Fix: a GPU instance"),
    ({"instance": "ml.p3.2xlarge", "transformers_version": "5.3.0"}, sft.ImageError,
     "does not run on ml.p3.2xlarge \\(V100\\); images that do: \\['4.56.2'\\]"),
    ({"transformers_version": "4.99.0"}, sft.ImageError, "has \\['5.3.0', '4.56.2'\\]"),
    ({"nodes": 0}, sft.ConfigError, "nodes must be a whole number >= 1; got nodes=0"),
    ({"spot": True, "max_run": "2h", "max_wait": "1h"}, sft.ConfigError,
     'spot=True needs max_wait >= max_run; got max_wait=3600s, max_run=7200s. Fix: .fit\\(..., max_wait="4h"\\) or spot=False'),
    ({"max_wait": "1h"}, sft.ConfigError, "max_wait='1h' applies to spot jobs only"),
    ({"max_run": "forever"}, sft.ConfigError, "not a duration"),
    ({"subnets": ["subnet-1"]}, sft.ConfigError, "needs both subnets and security_groups"),
    ({"network_isolation": True}, sft.ConfigError, "cannot download 'sentence-transformers/all-MiniLM-L6-v2'"),
    ({"environment": {"HF_TOKEN": "x"}}, sft.ConfigError, "'HF_TOKEN' looks like a secret"),
    ({"environment": {"MODEL_AUTH": "hf_abcdefghijklmnopqrstuvwxyz012345"}}, sft.ConfigError, "looks like a secret"),
    ({"volume_size": 0}, sft.ConfigError, "volume_size=0"),
    ({"spto": True}, sft.ConfigError, "unknown option 'spto'; did you mean 'spot'"),
    ({"data": "s3"}, sft.ConfigError, "from_s3 data is not read before launch, so its classes must be named"),
])
def test_bad_inputs_fail_in_plan(options, error, message):
    options = dict(options)
    instance = options.pop("instance", "ml.p3.16xlarge")
    nodes = options.pop("nodes", 1)
    j = sft.Job.from_dataset(sft.Dataset.from_s3(train="s3://b/train/")) if options.pop("data", None) else job()
    with pytest.raises(error, match=message):
        j.plan(instance=instance, nodes=nodes, **options)


def test_metric_definitions_capture_exponents_exactly():
    plan = job().plan(instance="ml.g5.xlarge")
    lr = next(m for m in plan.metric_definitions if m.name == "learning_rate")
    line = contract.metric_line("learning_rate", 2.4e-05, 10, 0.5)
    assert float(re.search(lr.regex, line).group(1)) == 2.4e-05


# ---- against the moto server -----------------------------------------------------------------------------
def test_training_job_request_is_what_we_planned(moto, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecretsecretsecret123")  # must never reach the job
    run = fit(moto, spot=True, max_run="2h", tags={"team": "nlp"}, volume_size=50)
    request = moto.sent["CreateTrainingJob"][-1]
    plan = run.plan

    assert run.backend == "sagemaker" and run.status == "Completed" and run.name.startswith("sft-all-minilm-l6-v2-")
    assert request["AlgorithmSpecification"]["TrainingImage"] == plan.sagemaker.training_image
    assert request["ResourceConfig"] == {"InstanceType": "ml.p3.16xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50}
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    data_hash = channels["train"].split("/data/")[1].split("/")[0]
    assert plan.sagemaker.checkpoint_s3.endswith("/<data hash>/")
    assert request["CheckpointConfig"] == {"S3Uri": plan.sagemaker.checkpoint_s3.replace("<data hash>", data_hash),
                                           "LocalPath": "/opt/ml/checkpoints"}
    assert set(channels) == {"train", "test", "code", "sm_drivers"}
    assert re.fullmatch(r"s3://sft-test-bucket/sagefinetune/data/[0-9a-f]{16}/train/", channels["train"])
    sent_metrics = {m["Name"]: m["Regex"] for m in request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert sent_metrics == {m.name: m.regex for m in plan.metric_definitions}
    assert {"Key": "team", "Value": "nlp"} in request["Tags"]
    hp = request["HyperParameters"]
    assert hp["learning_rate"] == "2.4e-05" and hp["labels"] == '["business","entertainment","politics","sports","tech"]'
    assert contract.parse_hyperparameters(hp)["epochs"] == 1.0  # what the entry point will read
    everything = str(request)
    assert "hf_secret" not in everything and "HF_TOKEN" not in everything
    assert run.model_artifact.endswith(f"{run.name}/output/model.tar.gz")


def test_source_upload_holds_our_entry_point(moto):
    run = fit(moto)
    s3 = moto.session().client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=aws.BUCKET, Prefix=f"sft-all-minilm-l6-v2/{run.name}/input/code/")["Contents"]]
    names = {k.split("/input/code/")[1] for k in keys}
    # inference.py travels too: outputs.py writes it into the model folder as code/inference.py (and truncation.py,
    # which tokenizing for training uses as well, beside it)
    assert names == {"train.py", "contract.py", "channels.py", "checkpoints.py", "training.py", "outputs.py", "hardware.py",
                     "tokencache.py", "redaction.py", "objective.py", "tracking.py", "truncation.py", "request_body.py",
                     "serving_choice.py", "inference.py", "metrics/classification.py", "requirements.txt"}


def test_the_same_job_uploads_its_data_once(moto):
    fit(moto)
    data_puts = [p for p in moto.sent["PutObject"] if "/data/" in p["Key"]]
    assert {p["Key"].rsplit("/", 2)[1] for p in data_puts} == {"train", "test"}
    moto.sent.clear()
    fit(moto)
    assert not [p for p in moto.sent.get("PutObject", []) if "/data/" in p["Key"]]
    fit(moto, job(epochs=2))  # other hyperparameters, same rows: still no upload
    assert not [p for p in moto.sent.get("PutObject", []) if "/data/" in p["Key"]]
    fit(moto, sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=61, test=20, seed=1)))
    assert len([p for p in moto.sent["PutObject"] if "/data/" in p["Key"]]) == 2  # other rows: a new prefix


def put_corp_data(moto, columns="body,stars"):
    s3 = moto.session().client("s3")
    s3.create_bucket(Bucket="corp-data")
    for split in ("train", "test"):
        s3.put_object(Bucket="corp-data", Key=f"reviews/{split}/part-0.csv", Body=f"{columns}\ngreat film,5\nawful,1\n".encode())
    moto.sent.clear()


def test_from_s3_columns_are_checked_before_launch(moto):
    put_corp_data(moto, columns="review,stars")
    data = sft.Dataset.from_s3(train="s3://corp-data/reviews/train/", test="s3://corp-data/reviews/test/").columns(
        text="body", label="stars")
    with pytest.raises(sft.ColumnError, match="'body' is not in s3://corp-data/reviews/.*its columns are \\['review', 'stars'\\]"):
        fit(moto, sft.Job.from_dataset(data).map_labels({1: "negative", 5: "positive"}), nodes=1, instance="ml.g5.xlarge")
    with pytest.raises(sft.DataError, match="holds no .jsonl"):
        fit(moto, sft.Job.from_dataset(sft.Dataset.from_s3(train="s3://corp-data/nothing/")).map_labels({1: "n", 5: "p"}),
            nodes=1, instance="ml.g5.xlarge")
    assert "CreateTrainingJob" not in moto.sent


def test_from_s3_channels_are_passed_through(moto):
    put_corp_data(moto)
    data = sft.Dataset.from_s3(train="s3://corp-data/reviews/train/", test="s3://corp-data/reviews/test/").columns(
        text="body", label="stars")
    j = sft.Job.from_dataset(data).map_labels({1: "negative", 5: "positive"})
    fit(moto, j, nodes=1, instance="ml.g5.xlarge")
    request = moto.sent["CreateTrainingJob"][-1]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["train"] == "s3://corp-data/reviews/train/" and channels["test"] == "s3://corp-data/reviews/test/"
    hp = contract.parse_hyperparameters(request["HyperParameters"])
    assert hp["text_column"] == "body" and hp["label_column"] == "stars"
    assert hp["label_mapping"] == {"1": "negative", "5": "positive"} and hp["labels"] == ["negative", "positive"]
    encode = entry_channels.label_encoder(hp["labels"], hp["label_mapping"])
    assert [encode(v) for v in (1, 5, 5.0, "1")] == [0, 1, 1, 0]  # star 1 is negative, not class id 1
    with pytest.raises(ValueError, match="not in the label map"):
        encode(3)
    assert not [p for p in moto.sent.get("PutObject", []) if "/data/" in p["Key"]]


def test_subnets_as_a_list_reach_the_plan():
    plan = job().plan(instance="ml.g5.xlarge", subnets=["subnet-1", "subnet-2"], security_groups=["sg-1"])
    assert plan.sagemaker.subnets == ("subnet-1", "subnet-2") and plan.sagemaker.security_groups == ("sg-1",)


def test_attach_to_an_unknown_job_says_what_to_check(moto):
    from sagefinetune.backends.sagemaker.training import SageMakerBackend

    backend = SageMakerBackend(moto.session())
    with pytest.raises(sft.AWSError, match="'no-such-job'.*Fix"):
        backend.attach("no-such-job")


def test_network_isolation_vpc_and_kms_reach_the_request(moto):
    j = job().model("s3://models-bucket/minilm/")
    fit(moto, j, network_isolation=True, subnets=["subnet-1"], security_groups=["sg-1"], encrypt_inter_node=True,
        volume_kms_key="alias/vol", output_kms_key="alias/out")
    request = moto.sent["CreateTrainingJob"][-1]
    assert request["EnableNetworkIsolation"] is True and request["EnableInterContainerTrafficEncryption"] is True
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == "alias/vol" and request["OutputDataConfig"]["KmsKeyId"] == "alias/out"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["model"] == "s3://models-bucket/minilm/"
    code = [p["Key"] for p in moto.sent["PutObject"] if "/input/code/" in p["Key"]]
    assert not any(k.endswith("requirements.txt") for k in code)  # nothing to pip-install without a network


def test_attach_gives_the_last_value_of_each_metric_series(moto):
    run = fit(moto, wait=False)
    logs = moto.session().client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{run.name}/algo-1-1700000000")
    lines = [contract.metric_line("eval_accuracy", 0.41, 10, 1.0), contract.metric_line("learning_rate", 2.4e-05, 10, 1.0),
             contract.metric_line("eval_accuracy", 0.93, 20, 2.0), "some other line"]
    now = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
    logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{run.name}/algo-1-1700000000",
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)])
    training = moto.training_job(run.name)
    training.billable_time_in_seconds = 1800
    training.training_time_in_seconds = 1900

    attached = sft.TrainingRun.attach(run.name, boto_session=moto.session())
    assert attached.metrics == {"eval_accuracy": 0.93, "learning_rate": 2.4e-05}
    assert attached.status == "Completed" and attached.model_artifact == run.model_artifact
    assert attached.billable_seconds == 1800 and attached.training_seconds == 1900
    assert attached.cost.usd == pytest.approx(0.5 * 28.152 * 2)
    assert "1800 s x $28.1520/h x 2 node(s)" in str(attached.cost)


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_a_failed_or_stopped_job_raises_with_its_failure_reason(moto, status):
    run = fit(moto, wait=False)
    training = moto.training_job(run.name)
    training.training_job_status = status
    training.failure_reason = "AlgorithmError: CUDA out of memory"
    with pytest.raises(sft.TrainingError, match=f"{status.lower()}: AlgorithmError: CUDA out of memory") as err:
        run.wait(progress=False)
    assert err.value.job_name == run.name and "CUDA out of memory" in err.value.reason
    with pytest.raises(sft.TrainingError, match="CUDA out of memory"):
        sft.TrainingRun.attach(run.name, boto_session=moto.session())


def test_wait_follows_status_and_prints_log_lines(moto, capsys):
    run = fit(moto, wait=False)
    logs = moto.session().client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{run.name}/algo-1-1")
    logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{run.name}/algo-1-1",
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "[sagefinetune] rows: train 60"}])
    done = run.wait(logs=True)
    out = capsys.readouterr()
    assert "[sagefinetune] rows: train 60" in out.out
    assert "Starting - Preparing the instances for training" in out.err and done.status == "Completed"


@pytest.mark.parametrize("case", ["unknown instance", "nodes", "spot window", "missing role", "missing credentials",
                                  "label map"])
def test_bad_inputs_fail_before_any_s3_or_sagemaker_call(moto, monkeypatch, case):
    kwargs: dict = {}
    j = job()
    error = sft.ConfigError
    if case == "unknown instance":
        kwargs["instance"] = "ml.p3.16xlarg"
    elif case == "nodes":
        kwargs["nodes"] = -1
    elif case == "spot window":
        kwargs.update(spot=True, max_run="4h", max_wait="3h")
    elif case == "missing role":
        kwargs["role"] = None
        error = sft.CredentialsError
    elif case == "missing credentials":
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(key)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        error = sft.CredentialsError
    elif case == "label map":
        j = j.map_labels({0: "business", 1: "entertainment"})
        error = sft.LabelError
    session = moto.session()
    moto.sent.clear()
    with pytest.raises(error) as err:
        options = {"role": aws.ROLE, "bucket": aws.BUCKET, **kwargs}
        j.fit(instance=options.pop("instance", "ml.p3.16xlarge"), nodes=options.pop("nodes", 2), boto_session=session,
              progress=False, **options)
    assert "Fix:" in str(err.value)
    assert moto.calls() == [], f"{case}: AWS was called: {moto.calls()}"


def test_role_from_the_environment(moto, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_ROLE", aws.ROLE)
    fit(moto, role=None)
    assert moto.sent["CreateTrainingJob"][-1]["RoleArn"] == aws.ROLE


def test_aws_errors_are_translated_with_the_cause(moto):
    from botocore.exceptions import ClientError

    with pytest.raises(sft.AWSError) as err:
        fit(moto, bucket="no-such-bucket")
    assert err.value.code in ("404", "NoSuchBucket") and isinstance(err.value.__cause__, ClientError)
    assert "'no-such-bucket' cannot be used" in str(err.value) and "Fix:" in str(err.value)
    assert "CreateTrainingJob" not in moto.sent and "PutObject" not in moto.sent


@pytest.mark.slow
def test_download_gives_a_working_model(moto, trained_run, tmp_path):
    run = fit(moto, nodes=1, instance="ml.g5.xlarge")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for f in trained_run.model_dir.iterdir():
            tar.add(f, arcname=f.name)
    bucket, key = run.model_artifact[5:].split("/", 1)
    moto.session().client("s3").put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    folder = run.download(tmp_path / "downloaded")
    assert (folder / "config.json").exists() and run.model_dir == folder
    prediction = run.predictor().predict(["The striker scored twice in the cup final."])[0]
    assert prediction["label"] == "sports"


def test_price_table_has_prices_for_every_instance():
    assert all(i.price_per_hour > 0 for i in instances.INSTANCES.values())
    assert instances.lookup("ml.p3.16xlarge").price_per_hour == 28.152  # matches the team's benchmark bills


def test_upload_shows_progress_and_the_launch(moto, capsys):
    job().fit(instance="ml.g5.xlarge", role=aws.ROLE, bucket=aws.BUCKET, boto_session=moto.session(), progress=True)
    err = capsys.readouterr().err
    assert "upload train" in err and "upload test" in err and "launched SageMaker training job" in err
    job().fit(instance="ml.g5.xlarge", role=aws.ROLE, bucket=aws.BUCKET, boto_session=moto.session(), progress=True)
    assert "is already uploaded" in capsys.readouterr().err


# ---- the design card's call: Hub data, read here, staged to S3 ---------------------------------------------------
def test_the_design_cards_call_stages_the_pinned_copy_and_launches(moto, hub_data):
    """Job.from_hub("amazon_reviews_multi")...fit(ml.p3.16xlarge, spot): the rows are read from the (local) Hub on
    this machine at the pinned revision, checked, and uploaded; the job reads exactly those files and no token."""
    import hub_datasets
    import pyarrow.parquet as pq

    hub_datasets.serve_amazon_copy(hub_data, rows=300)
    card = sft.Job.from_hub("amazon_reviews_multi").map_labels(
        {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"})
    before = len(hub_data.requests)
    card.plan(instance="ml.p3.16xlarge", nodes=1, spot=True)
    assert len(hub_data.requests) == before  # the plan reads nothing
    run = fit(moto, card, instance="ml.p3.16xlarge", nodes=1, spot=True)

    request = moto.sent["CreateTrainingJob"][-1]
    assert request["ResourceConfig"]["InstanceType"] == "ml.p3.16xlarge" and request["EnableManagedSpotTraining"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert {"train", "validation", "test"} <= set(channels)
    s3 = moto.session().client("s3")
    staged = {}
    for split in ("train", "validation", "test"):
        key = channels[split].removeprefix(f"s3://{aws.BUCKET}/") + contract.DATA_FILE
        staged[split] = pq.read_table(io.BytesIO(s3.get_object(Bucket=aws.BUCKET, Key=key)["Body"].read()))
    assert {k: t.num_rows for k, t in staged.items()} == {"train": 1800, "validation": 1800, "test": 1800}
    texts = staged["train"]["text"].to_pylist()
    assert {t.rsplit("(", 1)[1].split()[0] for t in texts} == {"de", "en", "es", "fr", "ja", "zh"}
    assert not [t for t in texts if "newer main" in t]  # the pinned revision, not main
    assert [staged["train"]["label"].to_pylist().count(i) for i in range(3)] == [720, 360, 720]
    assert request["HyperParameters"]["labels"] == '["negative","neutral","positive"]'
    assert run.plan.estimate.train_rows == 1800  # refined on the rows as read
    assert HUB_TOKEN not in str(request) and "HF_TOKEN" not in str(request)


def test_class_weights_naming_no_class_of_the_data_stop_before_any_upload(moto):
    j = job(class_weights={"sport": 2.0})  # the label map is inferred from the rows: 'sports'
    with pytest.raises(sft.ConfigError, match="'sport', which is not a class of the label map.*did you mean 'sports'"):
        fit(moto, j, instance="ml.g5.xlarge", nodes=1)
    assert not moto.sent.get("PutObject") and not moto.sent.get("CreateTrainingJob")
