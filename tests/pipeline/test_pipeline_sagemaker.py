"""Pipelines on SageMaker: the definition the SDK builds (pure), and upsert, start and registration against moto."""

from __future__ import annotations

import json
import re
import socket

import aws
import pytest
from pipeline_defs import all_steps, needs, references, resolve, validate

import sagefinetune as sft
from sagefinetune.entrypoint import contract

DATA = re.compile(r"s3://sft-test-bucket/sagefinetune/data/[0-9a-f]{16}/")


def job(**hp):
    settings = {"epochs": 1, "batch_size": 16, "learning_rate": 2.4e-05, **hp}
    return (sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1))
            .hyperparameters(**settings))


def pipe(j=None, **options):
    options.setdefault("condition", {"eval_f1": 0.8})
    options.setdefault("register", "news-models")
    options.setdefault("bucket", aws.BUCKET)
    return (j or job()).pipeline("news", instance=options.pop("instance", "ml.g5.xlarge"), **options)


@pytest.fixture(scope="module")
def definition():
    """A full pipeline (spot, deploy when approved), rendered once: pure, no server needed."""
    p = pipe(spot=True, max_run="2h", deploy={"instance": "ml.m5.xlarge"})
    return json.loads(p.definition(role=aws.ROLE))


def steps_by_name(definition):
    return {s["Name"]: s for s in all_steps(definition["Steps"])}


# ---- the definition: built by the SDK, pure ---------------------------------------------------------------------------
def test_the_step_graph(definition):
    top = [(s["Name"], s["Type"]) for s in definition["Steps"]]
    assert top == [("Train", "Training"), ("Evaluate", "Processing"), ("Condition", "Condition")]
    gate = definition["Steps"][2]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in gate["IfSteps"]] == [("Register", "RegisterModel"),
                                                                 ("DeployIfApproved", "Condition")]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [("Fail", "Fail")]
    deploy = gate["IfSteps"][1]["Arguments"]
    assert [s["Name"] for s in deploy["IfSteps"]] == ["CreateModel", "EndpointConfig", "Deploy"]
    assert deploy["Conditions"] == [{"Type": "Equals", "LeftValue": {"Get": "Parameters.ModelApprovalStatus"},
                                     "RightValue": "Approved"}]


def test_parameters_are_what_users_change_between_runs(definition):
    params = {p["Name"]: (p["Type"], p["DefaultValue"]) for p in definition["Parameters"]}
    assert list(params) == ["DataLocation", "InstanceType", "MinEvalF1", "ModelApprovalStatus"]
    assert DATA.fullmatch(params["DataLocation"][1])
    assert params["InstanceType"] == ("String", "ml.g5.xlarge") and params["MinEvalF1"] == ("Float", 0.8)
    assert params["ModelApprovalStatus"] == ("String", "PendingManualApproval")


def test_every_reference_points_at_an_earlier_step_or_a_parameter(definition):
    order = [s["Name"] for s in all_steps(definition["Steps"])]
    parameters = {p["Name"] for p in definition["Parameters"]}
    for i, step in enumerate(all_steps(definition["Steps"])):
        own = {k: v for k, v in step["Arguments"].items() if k not in ("IfSteps", "ElseSteps")}  # nested: checked alone
        for ref in references(own) + references(step.get("PropertyFiles", [])):
            kind, name = ref.split(".")[:2]
            if kind == "Steps":
                assert name in order[:i], f"{step['Name']} refers to {ref}, which does not run before it"
            elif kind == "Parameters":
                assert name in parameters, ref
            else:
                assert ref in ("Execution.PipelineExecutionId",), ref


def test_evaluation_is_read_through_a_property_file(definition):
    steps = steps_by_name(definition)
    evaluate = steps["Evaluate"]
    assert evaluate["PropertyFiles"] == [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation",
                                          "FilePath": "evaluation.json"}]
    outputs = [o["OutputName"] for o in evaluate["Arguments"]["ProcessingOutputConfig"]["Outputs"]]
    assert outputs == ["evaluation"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["Arguments"]["ProcessingInputs"]}
    assert inputs["model"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert inputs["test"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.DataLocation"}, "test/"]}}
    assert evaluate["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", "/opt/ml/processing/input/code/evaluation.py"]
    condition = steps["Condition"]["Arguments"]["Conditions"]
    assert condition == [{"Type": "GreaterThanOrEqualTo", "LeftValue": {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": "metrics.eval_f1"}},
        "RightValue": {"Get": "Parameters.MinEvalF1"}}]


def test_registration_carries_artifact_image_metrics_labels_and_approval(definition):
    register = steps_by_name(definition)["Register"]["Arguments"]
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert "huggingface-pytorch-inference:2.6.0-transformers5.5.3-cpu-py312" in container["Image"]  # pairs with 5.3.0
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert register["ModelPackageGroupName"] == "news-models"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    metadata = register["CustomerMetadataProperties"]
    assert json.loads(metadata["sagefinetune:labels"]) == ["business", "entertainment", "politics", "sports", "tech"]
    assert "metrics.eval_f1" in json.dumps(metadata["sagefinetune:eval_f1"])
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json" and "evaluation.json" in json.dumps(statistics["S3Uri"])


def test_fail_step_names_the_metric_its_value_and_the_threshold(definition):
    message = steps_by_name(definition)["Fail"]["Arguments"]["ErrorMessage"]
    text = resolve(message, {"JsonGet:metrics.eval_f1": 0.7731, "Parameters.MinEvalF1": 0.8})
    assert text == "eval_f1 = 0.7731, needs >= 0.8: not registered in news-models"


def test_every_step_is_a_request_the_api_accepts(definition):
    values = {"Parameters.DataLocation": "s3://sft-test-bucket/data/", "Parameters.InstanceType": "ml.g5.xlarge",
              "Parameters.MinEvalF1": 0.8, "Parameters.ModelApprovalStatus": "Approved",
              "Execution.PipelineExecutionId": "abc123def456",
              "Steps.Train.ModelArtifacts.S3ModelArtifacts": "s3://sft-test-bucket/out/job/output/model.tar.gz",
              "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri": "s3://sft-test-bucket/ev",
              "JsonGet:metrics.eval_f1": 0.91, "Steps.Register.ModelPackageArn": "arn:aws:sagemaker:us-east-1:"
              "123456789012:model-package/news-models/1", "Steps.CreateModel.ModelName": "news-model",
              "Steps.EndpointConfig.EndpointConfigName": "news-abc123def456"}
    checked = [validate(s, values)[0] for s in all_steps(definition["Steps"]) if s["Type"] not in ("Condition", "Fail")]
    assert checked == ["CreateTrainingJob", "CreateProcessingJob", "CreateModelPackage", "CreateModel",
                       "CreateEndpointConfig", "CreateEndpoint"]


def test_spot_and_checkpoints_reach_the_training_step(definition):
    train = steps_by_name(definition)["Train"]["Arguments"]
    assert train["EnableManagedSpotTraining"] is True
    assert train["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    checkpoint = resolve(train["CheckpointConfig"]["S3Uri"], {"Execution.PipelineExecutionId": "abc123"})
    assert re.fullmatch(r"s3://sft-test-bucket/sagefinetune/checkpoints/sft-all-minilm-l6-v2-[0-9a-f]{10}/"
                        r"[0-9a-f]{16}/abc123/", checkpoint)  # one prefix per execution: no resuming another's data
    assert train["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.InstanceType"}


def test_the_training_step_is_the_training_job_fit_launches(moto, definition):
    options = dict(spot=True, max_run="2h", bucket=aws.BUCKET, role=aws.ROLE)
    job().fit(instance="ml.g5.xlarge", boto_session=moto.session(), progress=False, **options)
    fitted = moto.sent["CreateTrainingJob"][-1]
    step = resolve(steps_by_name(definition)["Train"]["Arguments"], {
        "Parameters.InstanceType": "ml.g5.xlarge", "Parameters.DataLocation": "unused", "Execution.PipelineExecutionId": "x"})
    for key in ("AlgorithmSpecification", "HyperParameters", "ResourceConfig", "StoppingCondition", "RoleArn", "Tags",
                "OutputDataConfig", "EnableManagedSpotTraining", "Environment"):
        assert step.get(key) == fitted.get(key), key
    assert step["CheckpointConfig"]["S3Uri"] == fitted["CheckpointConfig"]["S3Uri"] + "x/"
    assert [c["ChannelName"] for c in step["InputDataConfig"]] == [c["ChannelName"] for c in fitted["InputDataConfig"]]


def test_definition_needs_no_network_and_no_account(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                "AWS_REGION", "SAGEMAKER_ROLE"):
        monkeypatch.delenv(key, raising=False)

    def no_network(self, address):
        raise OSError(f"definition() tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    text = job().pipeline("news", instance="ml.g4dn.xlarge", condition={"accuracy": 0.9}).definition()
    definition = json.loads(text)
    assert definition["Steps"][0]["Arguments"]["RoleArn"].startswith("arn:aws:iam::000000000000:role/")
    assert "s3://<default bucket>/sagefinetune/data/" in text and "MinEvalAccuracy" in text
    assert json.loads(job().pipeline("news", instance="ml.g4dn.xlarge", condition={"accuracy": 0.9}).definition()) == definition


# ---- checks before anything runs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"condition": {"eval_f2": 0.8}}, "condition on 'eval_f2'.*did you mean 'eval_f1'"),
    ({"condition": {"eval_f1": 85}}, "a threshold of 85 can never be met"),
    ({"condition": {}}, "condition must map a metric to its threshold"),
    ({"register": "news models"}, "model group 'news models' must be 1-63 letters"),
    ({"approval": "approved"}, "approval status 'approved' is not one of"),
    ({"deploy": {"instance": "ml.m5.xlarg"}}, "did you mean 'ml.m5.xlarge'"),
    ({"deploy": {"serverless": True, "memory_mb": 1000}}, "memory_mb=1000 must be 1024..6144"),
    ({"deploy": {"instanse": "ml.m5.xlarge"}}, "unknown deploy option 'instanse'; did you mean 'instance'"),
    ({"spot": True, "max_run": "2h", "max_wait": "1h"}, "spot=True needs max_wait >= max_run"),
    ({"epochs": 2}, "epochs is a hyperparameter"),
])
def test_bad_pipelines_are_refused_where_they_are_made(kwargs, message):
    with pytest.raises(sft.ConfigError, match=message):
        pipe(**kwargs)


def test_a_condition_the_data_cannot_meet_is_refused_once_the_data_is_read():
    import pandas as pd

    rows = [("the match and the vote", ["sport", "politics"]), ("a late goal", ["sport"]), ("the budget", ["politics"])]
    frame = pd.DataFrame({"text": [t for t, _ in rows] * 10, "label": [labels for _, labels in rows] * 10})
    tags = sft.Job.from_dataset(sft.Dataset.from_pandas({"train": frame, "test": frame}))
    p = tags.pipeline("tags", instance="ml.g5.xlarge", condition={"eval_f1": 0.8}, bucket=aws.BUCKET)  # labels unknown yet
    with pytest.raises(sft.ConfigError, match="step of a multi-label job reports eval_f1_micro.*Fix: condition="
                                              "\\{'eval_f1_micro': 0.85\\}"):
        p.definition()


def test_a_local_only_pipeline_says_so_when_asked_for_a_definition():
    local = job().pipeline("news", condition={"eval_f1": 0.8})
    with pytest.raises(sft.ConfigError, match="trains with instance='local'.*Fix: job.pipeline\\(..., instance='ml.g5"):
        local.definition()
    with pytest.raises(sft.ConfigError, match="pipeline name 'news_v2' must be letters, digits and '-'"):
        job().pipeline("news_v2", condition={"eval_f1": 0.8})


@pytest.mark.parametrize("parameters, message", [
    ({"MinEvalF2": 0.9}, "unknown pipeline parameter 'MinEvalF2'; did you mean 'MinEvalF1'"),
    ({"MinEvalF1": 1.5}, "MinEvalF1=1.5: eval_f1 is a fraction"),
    ({"MinEvalF1": "high"}, "MinEvalF1 is the threshold of eval_f1: a number"),
    ({"ModelApprovalStatus": "Approve"}, "approval status 'Approve' is not one of"),
    ({"InstanceType": "ml.p3.2xlarge"}, "has 1 x V100 and the transformers 4.56.2.*image"),
    ({"InstanceType": "ml.g5.12xlarge"}, "has 4 x A10G"),
    ({"DataLocation": "/data/news"}, "DataLocation must be an s3:// prefix"),
])
def test_bad_parameters_stop_before_any_call(moto, parameters, message):
    p = pipe(boto_session=moto.session())
    moto.sent.clear()
    with pytest.raises(sft.ConfigError, match=message) as err:
        p.start(parameters)
    assert "Fix:" in str(err.value) and moto.calls() == []


# ---- against the moto server ---------------------------------------------------------------------------------------
def test_definition_is_what_upsert_sends_and_uploads_go_once(moto):
    p = pipe(boto_session=moto.session(), spot=True, max_run="2h")
    expected = json.loads(p.definition(role=aws.ROLE))
    response = p.upsert(role=aws.ROLE, progress=False)
    assert response["PipelineArn"].endswith(":pipeline/news")
    sent = moto.sent["CreatePipeline"][-1]
    assert json.loads(sent["PipelineDefinition"]) == expected and sent["RoleArn"] == aws.ROLE
    assert {"Key": "sagefinetune:pipeline", "Value": "news"} in sent["Tags"]
    assert moto.sent["CreateModelPackageGroup"][-1]["ModelPackageGroupName"] == "news-models"
    s3 = moto.session().client("s3")
    for step in all_steps(expected["Steps"]):  # every S3 location the steps read from exists (data, code, drivers)
        for uri in re.findall(r"s3://sft-test-bucket/sagefinetune/(?:code|data)/[0-9a-f]{16}/?", json.dumps(step)):
            listed = s3.list_objects_v2(Bucket=aws.BUCKET, Prefix=uri.split("/", 3)[3])
            assert listed.get("KeyCount", 0) > 0, uri
    moto.sent.clear()
    p.upsert(role=aws.ROLE, progress=False)
    assert "UpdatePipeline" in moto.sent and "CreateModelPackageGroup" not in moto.sent
    assert "PutObject" not in moto.sent  # the same data and code: nothing uploaded again


def test_start_sends_the_parameters_and_wait_follows_the_execution(moto):
    p = pipe(boto_session=moto.session())
    p.upsert(role=aws.ROLE, progress=False)
    execution = p.start({"MinEvalF1": 0.9, "ModelApprovalStatus": "Approved", "InstanceType": "ml.g5.2xlarge"})
    assert moto.sent["StartPipelineExecution"][-1]["PipelineParameters"] == [
        {"Name": "MinEvalF1", "Value": "0.9"}, {"Name": "ModelApprovalStatus", "Value": "Approved"},
        {"Name": "InstanceType", "Value": "ml.g5.2xlarge"}]
    assert execution.wait(progress=False) is execution and execution.status() == "Succeeded"
    again = sft.PipelineExecution.attach(execution.arn, boto_session=moto.session())
    assert again.status() == "Succeeded" and again.pipeline == "news"


def test_start_before_upsert_says_what_to_do(moto):
    with pytest.raises(sft.AWSError, match="no pipeline 'news' to start.*Fix: pipe.upsert"):
        pipe(boto_session=moto.session()).start()


def test_a_failed_execution_raises_with_its_status(moto):
    from moto.sagemaker.models import sagemaker_backends

    p = pipe(boto_session=moto.session())
    p.upsert(role=aws.ROLE, progress=False)
    execution = p.start()
    backend = sagemaker_backends[aws.ACCOUNT][aws.REGION]
    backend.pipelines["news"].pipeline_executions[execution.arn].pipeline_execution_status = "Failed"
    with pytest.raises(sft.PipelineError, match="execution .* failed") as err:
        execution.wait(progress=False)
    assert err.value.run is execution


def test_steps_lists_what_ran(moto):
    from datetime import datetime, timezone

    from botocore.stub import Stubber

    execution = sft.PipelineExecution.attach("arn:aws:sagemaker:us-east-1:123456789012:pipeline/news/execution/abc",
                                             boto_session=moto.session())
    client = execution._backend.client("sagemaker")
    when = datetime(2026, 11, 22, tzinfo=timezone.utc)
    with Stubber(client) as stub:  # moto has no ListPipelineExecutionSteps: the API's own response shape instead
        stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            {"StepName": "Train", "StepStatus": "Succeeded", "StartTime": when, "EndTime": when,
             "Metadata": {"TrainingJob": {"Arn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/pipelines-t"}}},
            {"StepName": "Evaluate", "StepStatus": "Failed", "StartTime": when, "FailureReason": "AlgorithmError"}]})
        steps = execution.steps()
    assert [(s["name"], s["status"]) for s in steps] == [("Train", "Succeeded"), ("Evaluate", "Failed")]
    assert steps[0]["job"].endswith("training-job/pipelines-t") and steps[1]["failure_reason"] == "AlgorithmError"


def test_the_register_step_registers_versions_the_registry_lists_and_approves(moto, definition):
    """The Register step's request, as SageMaker sends it during an execution, creates versions 1 and 2."""
    session = moto.session()
    session.client("sagemaker").create_model_package_group(ModelPackageGroupName="news-models")  # as upsert() does
    register = steps_by_name(definition)["Register"]
    for f1 in (0.91, 0.93):
        report = f"s3://{aws.BUCKET}/sagefinetune/pipelines/news/exec{int(f1 * 100)}/evaluation"
        session.client("s3").put_object(Bucket=aws.BUCKET, Key=report.split("/", 3)[3] + "/evaluation.json",
                                        Body=json.dumps({"metrics": {"eval_f1": f1, "eval_accuracy": f1 + 0.01}}))
        values = {"Steps.Train.ModelArtifacts.S3ModelArtifacts": f"s3://{aws.BUCKET}/out/job{f1}/output/model.tar.gz",
                  "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri": report,
                  "JsonGet:metrics.eval_f1": f1, "Parameters.ModelApprovalStatus": "PendingManualApproval"}
        _, request = validate(register, values)
        session.client("sagemaker").create_model_package(**request)

    registry = sft.Registry("news-models", backend="sagemaker", boto_session=session)
    versions = registry.versions()
    assert [(v.version, v.status) for v in versions] == [(1, "PendingManualApproval"), (2, "PendingManualApproval")]
    assert versions[1].metrics == {"eval_f1": 0.93} and versions[1].labels[0] == "business"
    assert versions[0].model.endswith("job0.91/output/model.tar.gz") and "inference" in versions[0].inference_image
    assert registry.table()["eval_f1"].tolist() == [0.91, 0.93]
    with pytest.raises(sft.ConfigError, match="is PendingManualApproval, not Approved.*Fix: registry.approve\\(2\\)"):
        registry.deploy(2, "ml.m5.xlarge")
    approved = registry.approve(2, note="reviewed")
    assert approved.status == "Approved" and moto.sent["UpdateModelPackage"][-1]["ModelApprovalStatus"] == "Approved"
    assert approved.metrics["eval_f1"] == 0.93  # from the package's metadata, else its evaluation.json
    assert registry.get("approved").version == 2
    with pytest.raises(sft.ConfigError, match="has no version 7; it has \\[1, 2\\]"):
        registry.get(7)


def test_a_missing_model_group_is_named(moto):
    with pytest.raises(sft.AWSError, match="no model package group 'nobody' in us-east-1"):
        sft.Registry("nobody", backend="sagemaker", boto_session=moto.session()).versions()


def test_registry_deploys_an_approved_version_through_the_endpoint_machinery(moto):
    needs("sagefinetune.backends.sagemaker.endpoints", "SageMaker endpoints (issue 7) are not merged into this branch yet")
    session = moto.session()
    client = session.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName="news-models")
    session.client("s3").put_object(Bucket=aws.BUCKET, Key="out/model.tar.gz", Body=b"archive")
    client.create_model_package(ModelPackageGroupName="news-models", ModelApprovalStatus="Approved",
                                InferenceSpecification={"Containers": [{
                                    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
                                             "2.6.0-transformers5.5.3-cpu-py312-ubuntu22.04",
                                    "ModelDataUrl": f"s3://{aws.BUCKET}/out/model.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]})
    endpoint = sft.Registry("news-models", backend="sagemaker", boto_session=session).deploy(
        1, "ml.m5.xlarge", role=aws.ROLE, progress=False)
    try:
        assert endpoint.kind == "realtime"
        container = moto.sent["CreateModel"][-1]["PrimaryContainer"]
        assert container["ModelDataUrl"] == f"s3://{aws.BUCKET}/out/model.tar.gz"
        assert container["Image"].endswith("huggingface-pytorch-inference:2.6.0-transformers5.5.3-cpu-py312-ubuntu22.04")
    finally:
        endpoint.delete()


# ---- from_s3 data: checked inside AWS -----------------------------------------------------------------------------
def test_from_s3_data_gets_a_check_step_and_a_parameter_per_channel():
    data = sft.Dataset.from_s3(train="s3://corp-data/reviews/train/", test="s3://corp-data/reviews/test/").columns(
        text="body", label="stars")
    p = (sft.Job.from_dataset(data).map_labels({1: "negative", 2: "negative", 4: "positive", 5: "positive"})
         .pipeline("reviews", instance="ml.g5.xlarge", condition={"accuracy": 0.9}, bucket=aws.BUCKET,
                   subnets=["subnet-1"], security_groups=["sg-1"]))
    assert p.parameter_names == ("TrainData", "TestData", "InstanceType", "MinEvalAccuracy", "ModelApprovalStatus")
    definition = json.loads(p.definition(role=aws.ROLE))
    steps = steps_by_name(definition)
    assert [s["Name"] for s in definition["Steps"]] == ["CheckData", "Train", "Evaluate", "Condition"]
    assert steps["Train"]["DependsOn"] == ["CheckData"]
    params = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert params["TrainData"] == "s3://corp-data/reviews/train/"
    check = steps["CheckData"]["Arguments"]
    args = check["AppSpecification"]["ContainerArguments"]
    hp = contract.parse_hyperparameters(dict(zip([a[2:] for a in args[2::2]], args[3::2])))
    assert hp["label_mapping"] == {"1": "negative", "2": "negative", "4": "positive", "5": "positive"}
    assert hp["text_column"] == "body" and hp["labels"] == ["negative", "positive"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in check["ProcessingInputs"]}
    assert inputs["train"] == {"Get": "Parameters.TrainData"} and inputs["test"] == {"Get": "Parameters.TestData"}
    for name in ("CheckData", "Evaluate"):  # processing runs in the training job's VPC
        assert steps[name]["Arguments"]["NetworkConfig"]["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert steps["Train"]["Arguments"]["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    evaluate_args = steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert "--label_mapping" in evaluate_args and "body" in evaluate_args  # evaluation reads the raw files the same way
