"""The pipeline's steps as the SageMaker SDK builds them (``sagemaker.mlops.workflow``): never hand-written JSON.

Import this module only inside :func:`sagefinetune.pipeline.sagemaker.sdk_environment` (the SDK's workflow modules
create boto3 clients when imported).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.network import NetworkConfig
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
from sagemaker.core.training.configs import InputData
from sagemaker.core.workflow.conditions import (
    ConditionEquals,
    ConditionGreaterThanOrEqualTo,
    ConditionLessThanOrEqualTo,
)
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.endpoint_step import EndpointConfigStep, EndpointStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.pipeline import Pipeline as SDKPipeline
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
from sagemaker.serve.model_builder import ModelBuilder

from sagefinetune.entrypoint.evaluation import READ_HYPERPARAMETERS
from sagefinetune.entrypoint.evaluation import REPORT as EVALUATION_FILE
from sagefinetune.pipeline.conditions import recheck
from sagefinetune.pipeline.local import inference_image
from sagefinetune.pipeline.parameters import APPROVAL, DATA, DATA_LOCATION, INSTANCE
from sagefinetune.plans.deploy import KIND_TAG, MODEL_TAG, TAG, ModelRef, environment

if TYPE_CHECKING:
    from sagefinetune.backends.sagemaker.training import SageMakerBackend, StagedInputs
    from sagefinetune.pipeline.spec import Pipeline

PROCESSING = "/opt/ml/processing"
MAX_METADATA_VALUE = 256


@dataclass
class Parameters:
    data: dict[str, Any]  # split -> the channel's S3 URI (a parameter, or a Join on DataLocation)
    instance: Any
    thresholds: dict[str, Any]  # metric -> ParameterFloat
    approval: Any
    all: list[Any]


def parameters(pipe: Pipeline, staged: StagedInputs) -> Parameters:
    """DataLocation (or one parameter per from_s3 channel), InstanceType, a threshold per condition, approval."""
    splits: list[str] = [s for s in ("train", "validation", "test") if s in staged.channels]
    if DATA_LOCATION in pipe.data_parameters:
        root = staged.channels["train"].rsplit("/train/", 1)[0] + "/"
        location = ParameterString(DATA_LOCATION, default_value=root)
        data: dict[str, Any] = {s: Join(on="", values=[location, f"{s}/"]) for s in splits}
        declared = [location]
    else:
        declared = [ParameterString(DATA[s], default_value=staged.channels[s]) for s in splits]
        data = dict(zip(splits, declared))
    instance = ParameterString(INSTANCE, default_value=pipe.instance)
    thresholds = {c.metric: ParameterFloat(c.parameter, default_value=c.threshold) for c in pipe.conditions}
    approval = ParameterString(APPROVAL, default_value=pipe.approval)
    return Parameters(data, instance, thresholds, approval, [*declared, instance, *thresholds.values(), approval])


def build(pipe: Pipeline, session: Any, role: str, staged: StagedInputs, backend: SageMakerBackend,
          scratch: str) -> Any:
    """The SDK Pipeline: (CheckData) -> Train -> Evaluate -> Condition -> [Register (-> deploy when approved)] | Fail."""
    recheck(pipe.conditions, staged.hyperparameters.get("problem_type"))
    params = parameters(pipe, staged)
    spec = staged.plan.sagemaker
    assert spec is not None
    # a spot job resumes within its execution; another execution (other data, perhaps) starts from scratch
    checkpoint = Join(on="", values=[staged.checkpoint, ExecutionVariables.PIPELINE_EXECUTION_ID, "/"])
    trainer = backend.model_trainer(staged.plan, session, role, staged.hyperparameters, staged.bucket, checkpoint,
                                     None, instance_type=params.instance)
    channels = [InputData(channel_name=s, data_source=params.data.get(s, uri)) for s, uri in staged.channels.items()]
    train = TrainingStep(name="Train", step_args=trainer.train(input_data_config=channels, wait=False, logs=False),
                         description=f"fine-tune {pipe.job.model_id} (the training job job.fit() launches)")
    steps: list[Any] = [train]
    if pipe.job.dataset.is_remote:
        check = check_data_step(pipe, session, role, staged, params, scratch)
        train.add_depends_on([check])
        steps.insert(0, check)
    evaluate, report = evaluation_step(pipe, session, role, staged, params, train, scratch)
    register = register_step(pipe, session, role, staged, params, train, evaluate, report)
    passed = [(ConditionGreaterThanOrEqualTo if c.higher_is_better else ConditionLessThanOrEqualTo)(
        left=JsonGet(step_name=evaluate.name, property_file=report, json_path=f"metrics.{c.metric}"),
        right=params.thresholds[c.metric]) for c in pipe.conditions]
    gate = ConditionStep(name="Condition", conditions=passed, if_steps=[register, *deploy_steps(pipe, session, role,
                         params, register)], else_steps=[fail_step(pipe, params, evaluate, report)])
    return SDKPipeline(name=pipe.name, parameters=params.all, steps=[*steps, evaluate, gate], sagemaker_session=session)


def _processor(session: Any, role: str, staged: StagedInputs, params: Parameters, script: str, name: str) -> Processor:
    spec = staged.plan.sagemaker
    assert spec is not None
    network = None  # the processing jobs run where the training job runs: the same VPC, the same isolation
    if spec.subnets or spec.network_isolation:
        network = NetworkConfig(enable_network_isolation=spec.network_isolation,
                                security_group_ids=list(spec.security_groups) or None, subnets=list(spec.subnets) or None)
    return Processor(role=role, image_uri=spec.training_image, instance_count=1, instance_type=params.instance,
                     entrypoint=["python3", f"{PROCESSING}/input/code/{script}"], volume_size_in_gb=spec.volume_size,
                     volume_kms_key=spec.volume_kms_key, output_kms_key=spec.output_kms_key,
                     max_runtime_in_seconds=spec.max_run, base_job_name=f"{staged.plan.job_name}-{name}",
                     sagemaker_session=session, env=dict(spec.environment),
                     tags=[{"Key": k, "Value": v} for k, v in spec.tags.items()], network_config=network)


def _input(name: str, source: Any, target: str) -> ProcessingInput:
    return ProcessingInput(input_name=name, s3_input=ProcessingS3Input(
        s3_uri=source, local_path=target, s3_data_type="S3Prefix", s3_input_mode="File"))


def _code(script: str, scratch: str) -> str:
    """The script and the modules beside it, staged for upload (content-addressed by the session)."""
    import shutil
    from pathlib import Path

    from sagefinetune.backends.sagemaker.source_code import ENTRYPOINT_DIR, source_files

    folder = Path(scratch) / script.removesuffix(".py")
    for source in source_files(script):
        target = folder / source.relative_to(ENTRYPOINT_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return str(folder)


def _arguments(hyperparameters: Mapping[str, str], names: tuple[str, ...]) -> list[str]:
    return [a for k, v in hyperparameters.items() if k in names for a in (f"--{k}", v)]


def evaluation_step(pipe: Pipeline, session: Any, role: str, staged: StagedInputs, params: Parameters, train: Any,
                    scratch: str) -> tuple[Any, Any]:
    """entrypoint/evaluation.py on the test channel; evaluation.json is read back through a property file."""
    processor = _processor(session, role, staged, params, "evaluation.py", "evaluate")
    output = Join(on="/", values=[f"s3://{staged.bucket}/{staged.plan.sagemaker.prefix}/pipelines/{pipe.name}",  # type: ignore[union-attr]
                                  ExecutionVariables.PIPELINE_EXECUTION_ID, "evaluation"])
    args = processor.run(
        inputs=[_input("code", _code("evaluation.py", scratch), f"{PROCESSING}/input/code"),
                _input("model", train.properties.ModelArtifacts.S3ModelArtifacts, f"{PROCESSING}/model"),
                _input("test", params.data.get("test", staged.channels["test"]), f"{PROCESSING}/test")],
        outputs=[ProcessingOutput(output_name="evaluation", s3_output=ProcessingS3Output(
            s3_uri=output, local_path=f"{PROCESSING}/evaluation", s3_upload_mode="EndOfJob"))],
        arguments=["--model_dir", f"{PROCESSING}/model", "--test_dir", f"{PROCESSING}/test", "--output_dir",
                   f"{PROCESSING}/evaluation", *_arguments(staged.hyperparameters, READ_HYPERPARAMETERS)])
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path=EVALUATION_FILE)
    step = ProcessingStep(name="Evaluate", step_args=args, property_files=[report],
                          description="score the trained model on the test channel (entrypoint/evaluation.py)")
    return step, report


def check_data_step(pipe: Pipeline, session: Any, role: str, staged: StagedInputs, params: Parameters,
                    scratch: str) -> Any:
    """from_s3 data is checked inside AWS (columns, texts, label values) before a GPU starts."""
    from sagefinetune.entrypoint.check_data import READ_HYPERPARAMETERS as CHECKED

    processor = _processor(session, role, staged, params, "check_data.py", "check-data")
    inputs = [_input("code", _code("check_data.py", scratch), f"{PROCESSING}/input/code")]
    inputs += [_input(s, params.data[s], f"{PROCESSING}/data/{s}") for s in params.data]
    args = processor.run(inputs=inputs, arguments=["--data_dir", f"{PROCESSING}/data",
                                                   *_arguments(staged.hyperparameters, CHECKED)])
    return ProcessingStep(name="CheckData", step_args=args, description="check columns, texts and labels in place")


def inference_environment(pipe: Pipeline, spec: Any) -> dict[str, str]:
    """The container environment the endpoints use: the handler every model folder carries (code/inference.py)."""
    model = ModelRef(kind="artifact", location="the training step's model.tar.gz", image=spec.image, has_handler=True)
    kind = "serverless" if pipe.deploy and pipe.deploy.kind == "serverless" else "realtime"
    return environment(model, kind, spec.region, None)


def register_step(pipe: Pipeline, session: Any, role: str, staged: StagedInputs, params: Parameters, train: Any,
                  evaluate: Any, report: Any) -> Any:
    """The next version of the model package group: artifact, inference image, metrics, labels, approval status."""
    spec = staged.plan.sagemaker
    assert spec is not None
    statistics = Join(on="/", values=[
        evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, EVALUATION_FILE])
    metadata: dict[str, Any] = {f"{TAG}{c.metric}": Join(on="", values=[
        JsonGet(step_name=evaluate.name, property_file=report, json_path=f"metrics.{c.metric}")]) for c in pipe.conditions}
    labels = json.dumps(list(staged.labels), separators=(",", ":"))
    if len(labels) <= MAX_METADATA_VALUE:
        metadata[f"{TAG}labels"] = labels
    metadata.update({f"{TAG}pipeline": pipe.name, f"{TAG}data": staged.data_hash,
                     f"{TAG}training-image": spec.training_image[-MAX_METADATA_VALUE:]})
    where = [pipe.deploy.instance] if pipe.deploy and pipe.deploy.kind == "realtime" else ["ml.m5.xlarge", "ml.c5.2xlarge"]
    builder = ModelBuilder(image_uri=inference_image(pipe), s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
                           role_arn=role, sagemaker_session=session, env_vars=inference_environment(pipe, spec),
                           log_level=logging.ERROR)  # its default, DEBUG, is set on a logger the SDK shares
    args = builder.register(
        model_package_group_name=pipe.group, content_types=["application/json"], response_types=["application/json"],
        inference_instances=where, transform_instances=where, approval_status=params.approval,
        model_metrics=ModelMetrics(model_statistics=MetricsSource(content_type="application/json", s3_uri=statistics)),
        customer_metadata_properties=metadata, domain="NATURAL_LANGUAGE_PROCESSING", task="CLASSIFICATION")
    return ModelStep(name="Register", step_args=args, description=f"register the next version of {pipe.group}")


def fail_step(pipe: Pipeline, params: Parameters, evaluate: Any, report: Any) -> Any:
    """The reason, with the values: ``eval_f1 = 0.81; needs >= 0.85``."""
    values: list[Any] = []
    for i, c in enumerate(pipe.conditions):
        values += [f"{'; ' if i else ''}{c.metric} = ",
                   JsonGet(step_name=evaluate.name, property_file=report, json_path=f"metrics.{c.metric}"),
                   f", needs {c.relation} ", params.thresholds[c.metric]]
    values.append(f": not registered in {pipe.group}")
    return FailStep(name="Fail", error_message=Join(on="", values=values))


def deploy_steps(pipe: Pipeline, session: Any, role: str, params: Parameters, register: Any) -> list[Any]:
    """When the version is registered as Approved: a model from the package, an endpoint config, the endpoint."""
    target = pipe.deploy
    if target is None or target.kind == "local":
        return []
    name = target.endpoint_name or pipe.name
    kind = "serverless" if target.kind == "serverless" else "realtime"
    tags = [{"Key": KIND_TAG, "Value": kind}, {"Key": MODEL_TAG, "Value": pipe.group},
            {"Key": f"{TAG}pipeline", "Value": pipe.name}]
    unique = Join(on="-", values=[name[:50], ExecutionVariables.PIPELINE_EXECUTION_ID])
    session.context = None
    session.init_model_step_arguments(_ModelHolder(session))
    session.create_model(name=unique, role=role, container_defs={"ModelPackageName": register.properties.ModelPackageArn},
                         tags=tags)
    model = ModelStep(name="CreateModel", step_args=session.context)
    session.context = None
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": model.properties.ModelName}
    if target.kind == "serverless":
        variant["ServerlessConfig"] = {"MemorySizeInMB": target.memory_mb, "MaxConcurrency": target.max_concurrency}
    else:
        variant.update(InstanceType=target.instance, InitialInstanceCount=target.instance_count)
    config = EndpointConfigStep(name="EndpointConfig", step_args=session.create_endpoint_config(
        name=unique, production_variants=[variant], tags=tags))
    endpoint = EndpointStep(name="Deploy", step_args=session.create_endpoint(
        endpoint_name=name, config_name=config.properties.EndpointConfigName, tags=tags, wait=False),
        description=f"create or update the endpoint {name}")
    approved = ConditionEquals(left=params.approval, right="Approved")
    return [ConditionStep(name="DeployIfApproved", conditions=[approved], if_steps=[model, config, endpoint],
                          else_steps=[])]


class _ModelHolder:
    """What ModelStep reads from the object its arguments were made for: the pipeline session."""

    def __init__(self, session: Any) -> None:
        self.sagemaker_session = session
