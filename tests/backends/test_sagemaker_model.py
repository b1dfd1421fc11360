"""The model a SageMaker job is given: a local folder travels as the model channel (uploaded once per content), and
config overrides that discard pretrained weights reach the job only when meant (``reinitialize=True``)."""

from __future__ import annotations

import aws
import pytest

import sagefinetune as sft
from sagefinetune.entrypoint import contract

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def job():
    return (sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=60, test=20, seed=1))
            .hyperparameters(epochs=1, batch_size=16))


def fit(moto, j, **options):
    return j.fit(instance="ml.g5.xlarge", boto_session=moto.session(), progress=False, role=aws.ROLE, bucket=aws.BUCKET,
                 **options)


def test_overrides_that_discard_weights_reach_the_job_when_meant(moto):
    j = job().model(MODEL, hidden_size=192, reinitialize=True)
    with pytest.warns(UserWarning, match="hidden_size=192, reinitialize=True\\): the pretrained weights of those"):
        fit(moto, j)
    hp = contract.parse_hyperparameters(moto.sent["CreateTrainingJob"][-1]["HyperParameters"])
    assert hp["reinitialize"] is True and hp["config_overrides"] == {"hidden_size": 192}


def test_a_local_model_folder_travels_as_the_model_channel(moto, tmp_path):
    import shutil

    from sagefinetune.facts.models import local_path

    folder = tmp_path / "my-model"
    shutil.copytree(local_path(MODEL), folder)
    run = fit(moto, job().model(str(folder)))
    request = moto.sent["CreateTrainingJob"][-1]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["model"].startswith(f"s3://{aws.BUCKET}/sagefinetune/models/")
    assert request["HyperParameters"]["model_name_or_path"] == "my-model"  # not this machine's path
    bucket, prefix = channels["model"][len("s3://"):].split("/", 1)
    listing = moto.session().client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    uploaded = {o["Key"][len(prefix):]: o["Size"] for o in listing}
    assert uploaded["model.safetensors"] == (folder / "model.safetensors").stat().st_size  # a multipart upload
    assert {"config.json", "tokenizer.json", "1_Pooling/config.json"} <= set(uploaded)
    moto.sent.clear()
    fit(moto, job().model(str(folder)))  # the same content: uploaded once
    writes = moto.sent.get("PutObject", []) + moto.sent.get("CreateMultipartUpload", [])
    assert not [w for w in writes if "/models/" in w["Key"]]
    assert run.status == "Completed"
