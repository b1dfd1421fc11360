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
    for cache in ("code/__pycache__/inference.cpython-311.pyc", "handler.pyc"):  # what importing code/ leaves behind
        (folder / cache).parent.mkdir(parents=True, exist_ok=True)
        (folder / cache).write_bytes(b"bytecode")
    fit(moto, job().model(str(folder)))  # the same content, bytecode caches apart: uploaded once
    writes = moto.sent.get("PutObject", []) + moto.sent.get("CreateMultipartUpload", [])
    assert not [w for w in writes if "/models/" in w["Key"]]
    assert run.status == "Completed"


def test_a_model_archive_and_the_local_pipelines_hash_leave_bytecode_caches_out(tmp_path):
    from sagefinetune.backends.sagemaker.model_archive import digest, entries
    from sagefinetune.backends.sagemaker.s3_content import content_hash  # the local pipeline's model and test hashes

    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "code" / "inference.py").write_text("def model_fn(model_dir): ...\n")
    before = (entries(folder, add_handler=False), content_hash(folder))
    (folder / "code" / "__pycache__").mkdir()
    (folder / "code" / "__pycache__" / "inference.cpython-311.pyc").write_bytes(b"bytecode")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "config.json").write_text("{}")
    after = (entries(folder, add_handler=False), content_hash(folder))
    assert [name for name, _ in after[0]] == ["code/inference.py", "config.json"]
    assert digest(after[0]) == digest(before[0]) and after[1] == before[1]
    (folder / "config.json").write_text('{"num_labels": 3}')
    assert content_hash(folder) != before[1]  # a real change still counts
