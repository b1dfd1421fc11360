"""job.track(...) on SageMaker, against moto: the settings reach the job's environment, the run is opened before
CreateTrainingJob and found again by attach, and a store on this machine is refused before any AWS call."""

import aws
import pytest
from test_sagemaker import fit, job

import sagefinetune as sft
from sagefinetune.backends import tracking as client_side
from sagefinetune.backends.sagemaker.training import SageMakerBackend

ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/reviews"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """The managed server stands in as a real MLflow store on this machine (moto has no MLflow)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path.resolve().as_posix()}/mlflow.db"
    monkeypatch.setattr(client_side, "_client", lambda _uri: MlflowClient(uri))
    finished = []
    monkeypatch.setattr(client_side, "finish_run", finished.append)
    return MlflowClient(uri), finished


def test_tracking_settings_reach_the_training_job_as_environment(moto, store):
    client, finished = store
    run = fit(moto, job().track("mlflow", experiment="reviews", uri=ARN))
    request = moto.sent["CreateTrainingJob"][-1]
    env = request["Environment"]
    assert env["SFT_TRACKING"] == "mlflow" and env["SFT_TRACKING_URI"] == ARN
    assert env["SFT_TRACKING_EXPERIMENT"] == "reviews" and env["SFT_TRACKING_RUN_ID"] == run.tracking.run_id
    assert '"instance": "ml.p3.16xlarge"' in env["SFT_TRACKING_PARAMS"] and '"nodes": 2' in env["SFT_TRACKING_PARAMS"]
    assert not any(k.startswith("SFT_TRACKING") or "mlflow" in v.lower() for k, v in request["HyperParameters"].items())
    assert run.tracking == sft.Tracking(ARN, "reviews", run.tracking.run_id)
    opened = client.get_run(run.tracking.run_id)
    assert opened.info.run_name == run.name and client.get_experiment(opened.info.experiment_id).name == "reviews"
    assert finished == [run] or run.status != "Completed"
    # attach reads it from DescribeTrainingJob's Environment, which SageMaker returns and moto leaves out
    described = moto.session().client("sagemaker").describe_training_job(TrainingJobName=run.name)
    backend = SageMakerBackend(moto.session())
    assert backend.describe(run.name, description={**described, "Environment": env}).tracking == run.tracking
    assert backend.describe(run.name, description=described).tracking is None


def test_the_job_installs_mlflow_and_the_sagemaker_plugin(moto, store):
    run = fit(moto, job().track("mlflow", uri=ARN))
    s3 = moto.session().client("s3")
    key = f"sft-all-minilm-l6-v2/{run.name}/input/code/requirements.txt"
    listing = s3.list_objects_v2(Bucket=aws.BUCKET, Prefix=f"sft-all-minilm-l6-v2/{run.name}/input/code/")
    found = [o["Key"] for o in listing["Contents"] if o["Key"].endswith("requirements.txt")]
    text = s3.get_object(Bucket=aws.BUCKET, Key=found[0] if found else key)["Body"].read().decode()
    assert "mlflow-skinny" in text and "sagemaker-mlflow" in text and "evaluate" in text


@pytest.mark.parametrize("uri", [None, "file:///tmp/mlruns", "sqlite:///mlflow.db", "http://localhost:5000"])
def test_a_store_on_this_machine_is_refused_before_any_aws_call(moto, store, uri):
    session = moto.session()
    moto.sent.clear()
    with pytest.raises(sft.ConfigError, match="a SageMaker job cannot") as err:
        job().track("mlflow", uri=uri).fit(instance="ml.g5.xlarge", role=aws.ROLE, bucket=aws.BUCKET,
                                           boto_session=session, progress=False)
    assert "Fix:" in str(err.value)
    assert moto.calls() == []
    assert store[0].search_experiments() == [] or all(e.name == "Default" for e in store[0].search_experiments())
