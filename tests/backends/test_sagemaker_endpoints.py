"""SageMaker real-time and serverless endpoints and batch transform, against the moto server the tests start.

The real sagemaker SDK (sagemaker-core resources) and boto3 talk HTTP to it; the requests are checked as they were
sent (the fixture's recorder), and invoke answers come from moto's queue of canned results, parsed by the same
``parse_response`` every endpoint kind uses.
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
import tarfile
import urllib.request
from datetime import timedelta

import aws
import pytest

import sagefinetune as sft
from sagefinetune.backends.sagemaker.model_archive import HANDLER
from sagefinetune.backends.sagemaker.training import SageMakerBackend
from sagefinetune.deploy import batch_transform_run, deploy_run
from sagefinetune.facts import images

RUN = "sft-all-minilm-l6-v2-20261121-101500"
ARTIFACT_KEY = f"sagefinetune/output/{RUN}/output/model.tar.gz"
ANSWER = [{"label": "sports", "score": 0.97}]


def archive_bytes(files: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (files or {"config.json": b"{}", "code/inference.py": b"# handler\n"}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sm_run(moto, training_image: str | None = None) -> sft.TrainingRun:
    """A finished SageMaker run as TrainingRun.attach gives it: artifact in S3, the job's role and image."""
    session = moto.session()
    session.client("s3").put_object(Bucket=aws.BUCKET, Key=ARTIFACT_KEY, Body=archive_bytes())
    moto.sent.clear()
    image = training_image or images.uri(images.IMAGE_PAIRS[0], aws.REGION)
    return sft.TrainingRun(name=RUN, backend="sagemaker", model_artifact=f"s3://{aws.BUCKET}/{ARTIFACT_KEY}",
                           description={"RoleArn": aws.ROLE, "AlgorithmSpecification": {"TrainingImage": image}},
                           sagemaker=SageMakerBackend(session))


def queue_answers(moto, *answers) -> None:
    results = [{"Body": json.dumps(a), "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic",
                "CustomAttributes": ""} for a in answers]
    request = urllib.request.Request(f"{moto.url}/moto-api/static/sagemaker/endpoint-results", method="POST",
                                     data=json.dumps({"results": results}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()


def sent(moto, operation: str) -> dict:
    return moto.sent[operation][-1]


def tags_of(request: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in request["Tags"]}


def remaining(moto) -> dict[str, list[str]]:
    sm = moto.session().client("sagemaker")
    return {"endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
            "configs": [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
            "models": [m["ModelName"] for m in sm.list_models()["Models"]]}


# ---- real-time and serverless: the requests as sent ------------------------------------------------------------------
def test_a_trained_run_deploys_to_a_real_time_endpoint(moto, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecretsecretsecret123")  # must never reach the model
    run = sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1)).hyperparameters(
        epochs=1).fit(instance="ml.g5.xlarge", role=aws.ROLE, bucket=aws.BUCKET, boto_session=moto.session(),
                      progress=False)
    moto.session().client("s3").put_object(Bucket=aws.BUCKET, Key=run.model_artifact.split("/", 3)[3],
                                           Body=archive_bytes())
    ep = deploy_run(run, instance="ml.g4dn.xlarge", tags={"team": "nlp"}, poll_seconds=0.1)

    model, config, endpoint = (sent(moto, op) for op in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"))
    container = model["PrimaryContainer"]
    assert container["Image"] == images.uri(run.plan.sagemaker.image, aws.REGION, "inference", "gpu")
    assert "huggingface-pytorch-inference:2.6.0-transformers5.5.3-gpu-py312" in container["Image"]  # pairs 5.3.0
    assert container["ModelDataUrl"] == run.model_artifact and model["ExecutionRoleArn"] == aws.ROLE
    assert container["Environment"] == {"HF_TASK": "text-classification", "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                                        "SAGEMAKER_REGION": aws.REGION, "SAGEMAKER_PROGRAM": "inference.py",
                                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    assert config["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": ep.name, "InstanceType":
                                             "ml.g4dn.xlarge", "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}]
    assert endpoint["EndpointConfigName"] == config["EndpointConfigName"] == model["ModelName"] == ep.name
    for request in (model, config, endpoint):
        tags = tags_of(request)
        assert tags["sagefinetune:kind"] == "realtime" and tags["sagefinetune:run"] == run.name
        assert tags["team"] == "nlp" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tags["sagefinetune:created-at"])
    assert "hf_secret" not in str(moto.sent) and "HF_TOKEN" not in str(moto.sent)
    assert re.fullmatch(r"sft-all-minilm-l6-v2-[0-9-]+-ep-\d{8}-\d{6}", ep.name) and len(ep.name) <= 63
    assert ep.kind == "realtime" and ep.status == "InService" and ep.hourly_cost == pytest.approx(0.736)
    assert ep.url == f"https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/{ep.name}/invocations"
    err = capsys.readouterr().err
    assert f"creating realtime endpoint {ep.name} (1 x ml.g4dn.xlarge)" in err
    assert "$0.736/h x 1 instance(s) = $0.736/h while it exists" in err and "us-east-1 on-demand" in err
    ep.delete()


def test_serverless_endpoint_request_and_price(moto, capsys):
    run = sm_run(moto)
    ep = deploy_run(run, instance="local", serverless=True, memory_mb=4096, max_concurrency=10,  # as run.deploy passes it
                    precision="fp32")
    variant = sent(moto, "CreateEndpointConfig")["ProductionVariants"]
    assert variant == [{"VariantName": "AllTraffic", "ModelName": ep.name,
                        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10}}]
    container = sent(moto, "CreateModel")["PrimaryContainer"]
    assert "-transformers5.5.3-cpu-py312" in container["Image"]  # serverless runs the CPU build
    assert container["Environment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    assert container["Environment"]["SFT_PRECISION"] == "fp32"  # the handler reads it
    assert tags_of(sent(moto, "CreateEndpoint"))["sagefinetune:kind"] == "serverless"
    assert ep.kind == "serverless" and ep.hourly_cost is None and ep.memory_mb == 4096
    err = capsys.readouterr().err
    assert "$0.0000200 per GB-second x 4 GB = $0.0000800 per second of request time" in err
    assert f"creating serverless endpoint {ep.name} (serverless 4096 MB)" in err
    assert "nothing while idle" in err and "per GB-second" in repr(ep)
    ep.delete()


def test_an_attached_p3_run_is_served_by_the_image_its_training_image_pairs_with(moto):
    run = sm_run(moto, training_image=images.uri(images.IMAGE_PAIRS[1], aws.REGION))  # transformers 4.56.2 (V100)
    with deploy_run(run) as ep:
        image = sent(moto, "CreateModel")["PrimaryContainer"]["Image"]
        assert "-transformers4.51.3-cpu-py312" in image and ep.instance == "ml.m5.xlarge"
        assert ep.hourly_cost == pytest.approx(0.23)
    assert ep.deleted


# ---- invoke, delete, attach, list --------------------------------------------------------------------------------
def test_predict_sends_the_json_contract_and_parses_the_answer(moto):
    queue_answers(moto, ANSWER, [{"label": "tech", "score": 0.6}, {"label": "business", "score": 0.3}])
    with deploy_run(sm_run(moto), instance="ml.m5.xlarge") as ep:
        assert ep.predict("The striker scored twice in the cup final.") == ANSWER
        assert ep.predict(["a new phone"], top_k=2) == [{"label": "tech", "score": 0.6}, {"label": "business", "score": 0.3}]
        calls = moto.sent["InvokeEndpoint"]
        assert [c["EndpointName"] for c in calls] == [ep.name, ep.name]
        assert calls[0]["ContentType"] == "application/json" and calls[0]["Accept"] == "application/json"
        body = ast.literal_eval(calls[1]["Body"])  # the recorder keeps bytes as their repr
        assert json.loads(body) == {"inputs": ["a new phone"], "parameters": {"top_k": 2}}


def test_predict_takes_what_users_pass_and_sends_no_request_for_nothing(moto):
    import numpy as np
    import pandas as pd

    queue_answers(moto, ANSWER, ANSWER)
    with deploy_run(sm_run(moto), instance="ml.m5.xlarge") as ep:
        texts = pd.DataFrame({"text": ["a match report", "a budget"]})["text"]
        ep.predict(texts)  # a pandas Series
        ep.predict(np.array(["a match report", "a budget"]), all_scores=True)
        assert ep.predict([]) == [] and ep.predict(pd.Series([], dtype=str)) == []
        with pytest.raises(sft.ConfigError, match=r"input 1 is empty or whitespace only \(' '\).*Fix: drop"):
            ep.predict(["a match report", " "])
        with pytest.raises(sft.ConfigError, match="top_k must be a whole number"):
            ep.predict(["a match report"], top_k=0)
        bodies = [json.loads(ast.literal_eval(c["Body"])) for c in moto.sent["InvokeEndpoint"]]
        assert bodies == [{"inputs": ["a match report", "a budget"]},
                          {"inputs": ["a match report", "a budget"], "parameters": {"all_scores": True}}]


def test_delete_removes_endpoint_config_and_model_once(moto, capsys):
    ep = deploy_run(sm_run(moto))
    assert remaining(moto) == {"endpoints": [ep.name], "configs": [ep.name], "models": [ep.name]}
    removed = ep.delete()
    assert removed == [f"endpoint {ep.name}", f"model {ep.name}", f"endpoint config {ep.name}"]
    assert remaining(moto) == {"endpoints": [], "configs": [], "models": []}
    assert f"[sagefinetune] deleted endpoint {ep.name}" in capsys.readouterr().out
    assert ep.delete() == []  # idempotent
    with pytest.raises(sft.ConfigError, match="was deleted"):
        ep.predict("x")
    with deploy_run(sm_run(moto)) as other:
        assert remaining(moto)["endpoints"] == [other.name]
    assert remaining(moto) == {"endpoints": [], "configs": [], "models": []}


def foreign_endpoint(moto, name: str = "someone-elses") -> str:
    sm = moto.session().client("sagemaker")
    sm.create_model(ModelName=name, ExecutionRoleArn=aws.ROLE, PrimaryContainer={"Image": "img"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.c5.xlarge", "InitialInstanceCount": 2}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name


def test_attach_reconnects_and_deletes_only_what_sagefinetune_made(moto):
    from moto.sagemaker.models import sagemaker_backends

    ours = deploy_run(sm_run(moto), instance="ml.g4dn.xlarge", progress=False)
    again = sft.Endpoint.attach(ours.name, boto_session=moto.session())
    assert (again.kind, again.instance, again.hourly_cost, again.owned) == ("realtime", "ml.g4dn.xlarge", 0.736, True)
    assert again.model_names == (ours.name,) and again.config_name == ours.name and again.status == "InService"
    queue_answers(moto, ANSWER)
    assert again.predict("goal!") == ANSWER
    assert len(again.delete()) == 3
    ours.deleted = True

    theirs = sft.Endpoint.attach(foreign_endpoint(moto), boto_session=moto.session())
    assert not theirs.owned and theirs.hourly_cost == pytest.approx(2 * 0.204)
    assert theirs.delete() == ["endpoint someone-elses"]
    assert remaining(moto) == {"endpoints": [], "configs": ["someone-elses"], "models": ["someone-elses"]}
    with pytest.raises(sft.AWSError, match="no SageMaker endpoint named 'nope' in us-east-1.*Fix:"):
        sft.Endpoint.attach("nope", boto_session=moto.session())
    assert sagemaker_backends  # the server runs in this process (used by the list test)


def test_list_finds_our_endpoints_with_age_and_cost_so_far(moto):
    from moto.core.utils import utcnow
    from moto.sagemaker.models import sagemaker_backends

    run = sm_run(moto)
    realtime = deploy_run(run, instance="ml.g4dn.xlarge", instance_count=2, progress=False)
    serverless = deploy_run(run, serverless=True, name="my-serverless", progress=False)
    foreign_endpoint(moto)
    backend = sagemaker_backends[aws.ACCOUNT][aws.REGION]
    backend.endpoints[realtime.name].creation_time = utcnow() - timedelta(hours=3)  # forgotten three hours ago

    table = sft.Endpoint.list(boto_session=moto.session())
    assert list(table.name) == [realtime.name, "my-serverless"]  # oldest first; not the foreign one
    first, second = table.iloc[0], table.iloc[1]
    assert (first.kind, first.instance, first.instance_count, first.status) == ("realtime", "ml.g4dn.xlarge", 2, "InService")
    assert first.age_hours == pytest.approx(3, abs=0.01)
    assert first.cost_so_far == pytest.approx(3 * 2 * 0.736, rel=0.01) and first.price_per_hour == 0.736
    assert first.model == RUN and first.run == RUN
    assert (second.kind, second.memory_mb, second.max_concurrency) == ("serverless", 3072, 5)
    assert math.isnan(second.cost_so_far) and "per request" in second.billing
    for name in table.name:
        sft.Endpoint.attach(name, boto_session=moto.session()).delete()
    realtime.deleted = serverless.deleted = True
    assert sft.Endpoint.list(boto_session=moto.session()).empty


def test_a_failed_endpoint_is_deleted_with_its_reason(moto):
    from moto.sagemaker.models import sagemaker_backends

    ep = deploy_run(sm_run(moto), wait=False, progress=False)
    endpoint = sagemaker_backends[aws.ACCOUNT][aws.REGION].endpoints[ep.name]
    endpoint.endpoint_status, endpoint.failure_reason = "Failed", "The primary container did not pass the ping check"
    with pytest.raises(sft.ServingError, match="failed: The primary container did not pass the ping check") as err:
        ep.wait()
    assert err.value.name == ep.name and ep.deleted
    assert remaining(moto) == {"endpoints": [], "configs": [], "models": []}


def test_a_failed_create_deletes_what_was_already_made(moto):
    # moto's old instance list refuses ml.g5 in endpoint configs: CreateEndpointConfig fails after CreateModel
    with pytest.raises(sft.AWSError, match="CreateEndpointConfig failed") as err:
        deploy_run(sm_run(moto), instance="ml.g5.xlarge", progress=False)
    assert err.value.code == "ValidationException"
    assert "DeleteModel" in moto.sent and "CreateEndpoint" not in moto.sent
    assert remaining(moto) == {"endpoints": [], "configs": [], "models": []}


def test_a_model_error_carries_the_containers_status_and_message():
    from botocore.exceptions import ClientError

    from sagefinetune.backends.sagemaker.endpoints import model_error

    exc = ClientError({"Error": {"Code": "ModelError", "Message": "Received client error (400)"},
                       "OriginalStatusCode": 400, "OriginalMessage": '{"error": "malformed JSON"}',
                       "ResponseMetadata": {"RequestId": "r-1"}}, "InvokeEndpoint")
    error = model_error("ep-1", exc)
    assert isinstance(error, sft.AWSError) and error.status == 400 and error.request_id == "r-1"
    assert 'endpoint ep-1 answered 400: {"error": "malformed JSON"}' in str(error) and "Fix:" in str(error)


# ---- from_model ------------------------------------------------------------------------------------------------------
def test_from_model_deploys_an_s3_archive_a_folder_and_a_hub_id(moto, tmp_path):
    session = moto.session()
    s3 = session.client("s3")
    s3.put_object(Bucket=aws.BUCKET, Key="models/imdb/model.tar.gz", Body=archive_bytes())
    uri = f"s3://{aws.BUCKET}/models/imdb/model.tar.gz"
    options = {"role": aws.ROLE, "boto_session": session, "progress": False}

    with sft.Endpoint.from_model(uri, **options) as ep:
        model = sent(moto, "CreateModel")
        assert model["PrimaryContainer"]["ModelDataUrl"] == uri and tags_of(model)["sagefinetune:model"] == uri
        assert ep.instance == "ml.m5.xlarge" and "-cpu-py312" in model["PrimaryContainer"]["Image"]

    folder = tmp_path / "my-model"
    (folder / ".cache").mkdir(parents=True)
    (folder / "config.json").write_text('{"id2label": {"0": "negative", "1": "positive"}}')
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / ".cache" / "junk").write_text("not packed")
    moto.sent.clear()
    with sft.Endpoint.from_model(folder, bucket=aws.BUCKET, instance="ml.g4dn.xlarge", **options) as ep:
        data = sent(moto, "CreateModel")["PrimaryContainer"]["ModelDataUrl"]
        assert re.fullmatch(r"s3://sft-test-bucket/sagefinetune/model-archives/[0-9a-f]{16}/model.tar.gz", data)
        assert ep.name.startswith("my-model-ep-")
        body = s3.get_object(Bucket=aws.BUCKET, Key=data.split("/", 3)[3])["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            names = sorted(tar.getnames())
        handler = ["code/inference.py", "code/request_body.py", "code/serving_choice.py", "code/truncation.py"] if HANDLER.is_file() else []  # the handler and its modules
        assert names == sorted(["config.json", "model.safetensors"] + handler)
    moto.sent.clear()
    with sft.Endpoint.from_model(str(folder), bucket=aws.BUCKET, **options):
        assert "PutObject" not in moto.sent  # the same files: uploaded once
        assert sent(moto, "CreateModel")["PrimaryContainer"]["ModelDataUrl"] == data

    moto.sent.clear()
    with sft.Endpoint.from_model("me/imdb-minilm", serverless=True, **options) as ep:
        container = sent(moto, "CreateModel")["PrimaryContainer"]
        assert "ModelDataUrl" not in container and container["Environment"]["HF_MODEL_ID"] == "me/imdb-minilm"
        assert container["Environment"]["HF_TASK"] == "text-classification" and ep.kind == "serverless"
    assert remaining(moto) == {"endpoints": [], "configs": [], "models": []}


def test_a_local_run_is_packed_uploaded_once_and_tagged_with_the_run(moto, tmp_path):
    folder = tmp_path / "bbc" / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"id2label": {"0": "business", "1": "sports"}}')
    (folder / "model.safetensors").write_bytes(b"\1" * 2000)
    run = sft.TrainingRun(name="sft-local-bbc", backend="local", run_dir=folder.parent, model_folder=folder)
    options = {"role": aws.ROLE, "bucket": aws.BUCKET, "boto_session": moto.session(), "progress": False}
    with deploy_run(run, instance="ml.c5.xlarge", **options) as ep:
        model = sent(moto, "CreateModel")
        assert tags_of(model)["sagefinetune:run"] == "sft-local-bbc" and ep.name.startswith("sft-local-bbc-ep-")
        assert "/model-archives/" in model["PrimaryContainer"]["ModelDataUrl"] and ep.hourly_cost == pytest.approx(0.204)
        assert "-transformers5.5.3-cpu-py312" in model["PrimaryContainer"]["Image"]  # the newest serving image
    assert len([p for p in moto.sent["PutObject"] if p["Key"].endswith("model.tar.gz")]) == 1


@pytest.mark.slow
def test_from_model_local_serves_the_folder_here(trained_run):
    with sft.Endpoint.from_model(trained_run.model_dir, instance="local") as ep:
        answer = ep.predict(["The striker scored twice in the cup final."])
        assert answer[0]["label"] == "sports"


# ---- batch transform ---------------------------------------------------------------------------------------------
def test_batch_transform_request_and_answers(moto, tmp_path):
    run = sm_run(moto)
    data = sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1)
    result = batch_transform_run(run, data, instance="ml.m5.xlarge", progress=False, poll_seconds=0.1)

    put = [p for p in moto.sent["PutObject"] if "/batch-input/" in p["Key"]]
    assert len(put) == 1 and re.fullmatch(r"sagefinetune/batch-input/[0-9a-f]{16}/input.jsonl", put[0]["Key"])
    s3 = moto.session().client("s3")
    lines = s3.get_object(Bucket=aws.BUCKET, Key=put[0]["Key"])["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"inputs": t} for t in data.load()["test"]["text"]]

    job = sent(moto, "CreateTransformJob")
    assert job["TransformInput"] == {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": result.input_uri}},
                                     "ContentType": "application/jsonlines", "SplitType": "Line"}
    assert job["TransformOutput"] == {"S3OutputPath": result.output_uri, "Accept": "application/jsonlines",
                                      "AssembleWith": "Line"}
    assert job["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
    assert job["BatchStrategy"] == "MultiRecord" and job["MaxConcurrentTransforms"] == 4
    assert job["ModelName"] == job["TransformJobName"] == result.job_name and tags_of(job)["sagefinetune:kind"] == "batch"
    model = sent(moto, "CreateModel")
    assert model["PrimaryContainer"]["ModelDataUrl"] == run.model_artifact and "-cpu-py312" in model["PrimaryContainer"]["Image"]
    assert result.output_uri == f"s3://{aws.BUCKET}/sagefinetune/batch-output/{result.job_name}/"
    assert result.status == "Completed" and result.rows == 20 and result.cost_usd is not None
    assert remaining(moto)["models"] == []  # the job's model is deleted when the job has ended

    answers = [ANSWER[0] if i % 2 else {"label": "tech", "score": 0.8} for i in range(20)]  # one JSON line per input
    key = result.output_uri.split("/", 3)[3] + "input.jsonl.out"
    s3.put_object(Bucket=aws.BUCKET, Key=key, Body="\n".join(json.dumps(a) for a in answers).encode() + b"\n")
    path = result.download(tmp_path / "answers")
    assert path == tmp_path / "answers" / "input.jsonl.out"
    assert result.predictions()[:2] == [{"label": "tech", "score": 0.8}, ANSWER[0]]
    assert list(result.to_pandas().columns) == ["label", "score"] and len(result.to_pandas()) == 20

    moto.sent.clear()
    batch_transform_run(run, data, progress=False, poll_seconds=0.1)
    assert not [p for p in moto.sent.get("PutObject", []) if "/batch-input/" in p["Key"]]  # same rows: no upload


def test_batch_transform_reads_s3_input_where_it_is(moto):
    run = sm_run(moto)
    s3 = moto.session().client("s3")
    s3.put_object(Bucket=aws.BUCKET, Key="requests/part-0.jsonl", Body=b'{"inputs": ["a text"]}\n{"inputs": ["more"]}\n')
    s3.put_object(Bucket=aws.BUCKET, Key="reviews/test/part-0.csv", Body=b"body,stars\ngreat,5\n")
    moto.sent.clear()
    result = batch_transform_run(run, f"s3://{aws.BUCKET}/requests/", output_path=f"s3://{aws.BUCKET}/preds",
                                 instance="ml.g4dn.xlarge", progress=False)
    job = sent(moto, "CreateTransformJob")
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{aws.BUCKET}/requests/"
    assert job["TransformOutput"]["S3OutputPath"] == result.output_uri == f"s3://{aws.BUCKET}/preds/"
    assert "-gpu-py312" in sent(moto, "CreateModel")["PrimaryContainer"]["Image"] and "PutObject" not in moto.sent

    moto.sent.clear()
    csv = sft.Dataset.from_s3(train=f"s3://{aws.BUCKET}/reviews/train/", test=f"s3://{aws.BUCKET}/reviews/test/")
    with pytest.raises(sft.DataError, match="each line must be a JSON object with 'inputs'.*Fix:"):
        batch_transform_run(run, csv, progress=False)
    assert not [c for c in moto.calls() if c.startswith("Create")]

    pending = batch_transform_run(run, ["one text", ("a premise", "a hypothesis")], wait=False, progress=False)
    assert pending.status == "InProgress" and remaining(moto)["models"] == [pending.job_name]
    assert pending.wait().status == "Completed" and remaining(moto)["models"] == []
    lines = [json.loads(line) for line in s3.get_object(Bucket=aws.BUCKET, Key=[
        p["Key"] for p in moto.sent["PutObject"] if "/batch-input/" in p["Key"]][0])["Body"].read().splitlines()]
    assert lines == [{"inputs": "one text"}, {"inputs": ["a premise", "a hypothesis"]}]


# ---- bad input: a clear error before anything is created ------------------------------------------------------------
@pytest.mark.parametrize("options, error, message", [
    ({"instance": "ml.m5.xlarg"}, sft.ConfigError, "unknown hosting instance type 'ml.m5.xlarg'; did you mean 'ml.m5.xlarge'"),
    ({"instance": "ml.p5.48xlarge"}, sft.ConfigError, "unknown hosting instance type.*serverless=True"),
    ({"serverless": True, "instance": "ml.g4dn.xlarge"}, sft.ConfigError, "serverless=True runs on SageMaker's own CPU"),
    ({"serverless": True, "memory_mb": 3000}, sft.ConfigError, "memory_mb=3000 is not a serverless memory size; .*1024, 2048"),
    ({"serverless": True, "memory_mb": 8192}, sft.ConfigError, "memory_mb=8192"),
    ({"serverless": True, "max_concurrency": 0}, sft.ConfigError, r"max_concurrency=0 must be a whole number in 1..200"),
    ({"serverless": True, "max_concurrency": 201}, sft.ConfigError, "max_concurrency=201"),
    ({"serverless": "yes"}, sft.ConfigError, "serverless must be True or False"),
    ({"memory_mb": 2048}, sft.ConfigError, "memory_mb=2048 applies to serverless endpoints only"),
    ({"instance_count": 0}, sft.ConfigError, "instance_count=0"),
    ({"name": "my_endpoint"}, sft.ConfigError, "name='my_endpoint' is not a SageMaker endpoint name"),
    ({"name": "x" * 64}, sft.ConfigError, "is not a SageMaker endpoint name"),
    ({"tags": {"aws:owner": "me"}}, sft.ConfigError, "reserved prefix"),
    ({"tags": {"sagefinetune:kind": "x"}}, sft.ConfigError, "reserved prefix"),
    ({"tags": {"owner": 7}}, sft.ConfigError, "tags must map non-empty strings to strings"),
    ({"tags": {"note": "a;b"}}, sft.ConfigError, "not a valid SageMaker tag"),
    ({"tags": {"HF_TOKEN": "x"}}, sft.ConfigError, "'HF_TOKEN' looks like a secret"),
    ({"tags": {"who": "hf_abcdefghijklmnopqrstuvwxyz012345"}}, sft.ConfigError, "looks like a secret"),
    ({"environment": {"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz012345"}}, sft.ConfigError, "looks like a secret"),
    ({"role": "my-role"}, sft.ConfigError, "role='my-role' is not an IAM role ARN"),
    ({"region": "mars-1"}, sft.ConfigError, "region='mars-1' is not an AWS region name"),
    ({"instace": "ml.m5.xlarge"}, sft.ConfigError, "unknown option 'instace' of deploy\\(\\); did you mean 'instance'"),
    ({"timeout": -1}, sft.ConfigError, "timeout must be a finite number > 0"),
    ({"image": "latest"}, sft.ConfigError, "image='latest' is not a container image URI"),
    ({"precision": "fp16"}, sft.ConfigError, "precision must be one of auto, fp32, bf16; got 'fp16'"),
    ({"environment": {"SFT_PRECISION": "half"}}, sft.ConfigError, "got 'half'"),
])
def test_bad_deploy_inputs_fail_before_any_aws_call(moto, options, error, message):
    run = sm_run(moto)
    with pytest.raises(error, match=message) as err:
        deploy_run(run, **options)
    assert "Fix:" in str(err.value)
    assert moto.calls() == [], f"AWS was called: {moto.calls()}"


@pytest.mark.parametrize("data, options, message", [
    (42, {}, "batch_predict takes a Dataset, a list of texts"),
    ([], {}, "batch_predict takes a Dataset"),
    (["ok"], {"output_path": "my-bucket/preds"}, "output_path='my-bucket/preds' is not an s3:// URI"),
    (["ok"], {"max_concurrent_transforms": 0}, "max_concurrent_transforms=0"),
    (["ok"], {"split": "dev"}, "split='dev' is not a split name"),
    (["ok"], {"serverless": True}, "unknown option 'serverless' of batch_predict"),
    (["ok"], {"instance": "ml.t3.micro"}, "unknown hosting instance type 'ml.t3.micro'"),
    (["ok"], {"download": "yes"}, "download must be True or False"),
])
def test_bad_batch_inputs_fail_before_any_aws_call(moto, data, options, message):
    run = sm_run(moto)
    with pytest.raises(sft.ConfigError, match=message) as err:
        batch_transform_run(run, data, **options)
    assert "Fix:" in str(err.value) and moto.calls() == []


def test_from_model_checks_the_model_before_any_aws_call(moto, tmp_path):
    session = moto.session()
    for model, message in (("s3://bucket/model/", "needs a model archive, s3://<bucket>/<key>.tar.gz"),
                           (str(tmp_path / "missing"), "does not exist"), ("not a/hub/id", "neither a Hub model id")):
        with pytest.raises(sft.ConfigError, match=message):
            sft.Endpoint.from_model(model, role=aws.ROLE, boto_session=session)
    assert moto.calls() == []


def test_calls_counts_what_the_server_received_from_any_session(moto):
    """A session the tests did not make (as Endpoint.list() or from_model() without boto_session= make their own)
    is seen by the server, so ``moto.calls() == []`` can fail for it."""
    import boto3

    session = boto3.Session(region_name=aws.REGION)
    session.client("sagemaker").list_endpoints()
    session.client("s3").head_bucket(Bucket=aws.BUCKET)
    assert moto.calls() == ["HEAD /sft-test-bucket", "SageMaker.ListEndpoints"]
    moto.sent.clear()
    sft.Endpoint.list()
    assert "SageMaker.ListEndpoints" in moto.calls()


def test_no_role_and_no_credentials_fail_before_any_aws_call(moto, monkeypatch):
    with pytest.raises(sft.CredentialsError, match="no SageMaker execution role.*SAGEMAKER_ROLE"):
        sft.Endpoint.from_model("me/imdb-minilm", boto_session=moto.session())
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(sft.CredentialsError, match="no AWS credentials"):
        sft.Endpoint.from_model("me/imdb-minilm", role=aws.ROLE)
    assert moto.calls() == []


def test_a_missing_artifact_is_found_before_anything_is_created(moto):
    run = sm_run(moto)
    run.model_artifact = f"s3://{aws.BUCKET}/nothing/here/model.tar.gz"
    with pytest.raises(sft.AWSError, match="cannot be read.*Fix: wait for the training job"):
        deploy_run(run)
    assert not [c for c in moto.calls() if c.startswith("Create")]


def test_endpoint_and_deploy_modules_import_no_sdk():
    import subprocess
    import sys

    code = ("import sys, sagefinetune as sft, sagefinetune.deploy, sagefinetune.plans.deploy; sft.Endpoint; "
            "print([m for m in ('sagemaker', 'boto3', 'torch', 'transformers', 'datasets', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
