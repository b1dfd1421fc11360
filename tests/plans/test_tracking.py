"""job.track(...): the builder's checks, what the plan shows, and what a SageMaker plan refuses (pure: no mlflow)."""

import subprocess
import sys

import pytest

import sagefinetune as sft
from sagefinetune.entrypoint import tracking as entry
from sagefinetune.plans.tracking import Tracking

ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/reviews"


def job():
    return sft.Job.from_dataset(sft.Dataset.example("imdb"))


def test_track_returns_a_new_job_and_leaves_the_old_one():
    base = job()
    tracked = base.track("mlflow", experiment="reviews")
    assert base.tracking is None and tracked.tracking.experiment == "reviews" and tracked.tracking.uri is None
    assert "track=mlflow:reviews" in repr(tracked)


@pytest.mark.parametrize("args, kwargs, message", [
    (("wandb",), {}, "unknown tracker 'wandb'"),
    (("mlfow",), {}, "did you mean 'mlflow'"),
    (("mlflow",), {"experiment": ""}, "experiment=...) must be a name"),
    (("mlflow",), {"experiment": 3}, "got 3"),
    (("mlflow",), {"experiment": "a\nb"}, "printable"),
    (("mlflow",), {"experiment": "x" * 257}, "1 to 256"),
    (("mlflow",), {"uri": ""}, "must be a tracking URI"),
    (("mlflow",), {"uri": "ftp://host/x"}, "'ftp' is not a tracking URI scheme"),
    (("mlflow",), {"uri": "arn:aws:sagemaker:us-east-1:123:mlflow-tracking-server/x"}, "is not the ARN"),
    (("mlflow",), {"uri": "https://user:secret@mlflow.example.com"}, "holds a password"),
    (("mlflow",), {"uri": "https://"}, "names no host"),
])
def test_bad_tracking_settings_fail_at_the_builder(args, kwargs, message):
    with pytest.raises(sft.ConfigError, match="Fix:") as err:
        job().track(*args, **kwargs)
    assert message in str(err.value)
    assert "secret" not in str(err.value).replace("holds a password", "")


def test_local_plan_shows_tracking_with_an_absolute_default_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = job().track("mlflow", experiment="reviews").plan()
    uri = f"sqlite:///{tmp_path.resolve().as_posix()}/mlruns/mlflow.db"
    assert plan.to_dict()["tracking"] == {"tracker": "mlflow", "uri": uri, "experiment": "reviews"}
    assert f"tracking     mlflow {uri}, experiment 'reviews'" in str(plan)
    assert job().plan().to_dict()["tracking"] is None and "tracking" not in str(job().plan())
    folder = job().track(uri=str(tmp_path / "store")).plan().tracking.uri
    assert folder == f"sqlite:///{(tmp_path / 'store').resolve().as_posix()}/mlflow.db"


@pytest.mark.parametrize("uri", [None, "file:///tmp/mlruns", "sqlite:///tmp/mlflow.db", "./mlruns",
                                 "http://localhost:5000", "http://127.0.0.1:5000"])
def test_a_sagemaker_plan_refuses_a_store_on_this_machine(uri):
    with pytest.raises(sft.ConfigError, match="a SageMaker job cannot") as err:
        job().track("mlflow", uri=uri).plan(instance="ml.g5.xlarge")
    assert "Fix: track('mlflow', uri='arn:aws:sagemaker:" in str(err.value)


def test_a_sagemaker_plan_takes_a_managed_server_arn_or_an_https_server():
    plan = job().track("mlflow", experiment="reviews", uri=ARN).plan(instance="ml.g5.xlarge")
    assert plan.tracking.uri == ARN and f"tracking     mlflow {ARN}" in str(plan)
    app = ARN.replace("mlflow-tracking-server", "mlflow-app")
    assert job().track(uri=app).plan(instance="ml.g5.xlarge").tracking.uri == app
    assert job().track(uri="https://mlflow.corp.example").plan(instance="ml.g5.xlarge").tracking is not None
    with pytest.raises(sft.ConfigError, match="network_isolation=True"):
        job().model("s3://models/minilm/").track(uri=ARN).plan(instance="ml.g5.xlarge", network_isolation=True)


def test_the_environment_the_entry_point_reads():
    spec = job().track("mlflow", experiment="reviews", uri=ARN).plan(instance="ml.g5.xlarge").tracking
    env = spec.environment("abc123", "run-1", {"nodes": 1})
    assert entry.settings(env) == {"tracker": "mlflow", "uri": ARN, "experiment": "reviews", "run_id": "abc123",
                                   "run_name": "run-1", "params": '{"nodes": 1}'}
    assert Tracking.from_environment(env) == Tracking(ARN, "reviews", "abc123")
    assert Tracking.from_environment({}) is None
    with pytest.raises(SystemExit, match="SFT_TRACKING_URI"):
        entry.settings({"SFT_TRACKING": "mlflow", "SFT_TRACKING_EXPERIMENT": "x"})
    with pytest.raises(SystemExit, match="not a tracker"):
        entry.settings({"SFT_TRACKING": "wandb"})


def test_planning_a_tracked_job_imports_no_mlflow():
    code = ("import sys, sagefinetune as sft; j = sft.Job.from_dataset(sft.Dataset.example('imdb')).track('mlflow'); "
            "j.plan(); j.plan(instance='ml.g5.xlarge') if False else None; "
            "import sagefinetune.entrypoint.tracking; assert 'mlflow' not in sys.modules, 'mlflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
