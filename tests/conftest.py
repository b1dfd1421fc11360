"""Shared fixtures. Nothing here reaches a network: the model and data come from PyPI packages."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

# No Hub: fail at once instead of retrying for 20 s (see docs/offline.rst).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist: each worker process gets its share of the cores for torch's threads (at least one), here and in the
# training and serving processes it starts (they inherit OMP_NUM_THREADS). Workers with a thread per core each would run
# several busy threads per core, and PyTorch's OpenMP threads spin at every barrier waiting for a thread that is not
# running: on 2 cores that cost far more than the idle core it saved. The README runs three workers on 2 cores, one
# thread each: a test waits for the processes and servers it starts, and the third worker fills those waits.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
if _workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // _workers))
if "SFT_CACHE_DIR" not in os.environ:  # the tests' caches (prepared data, speed probes) stay out of ~/.cache
    import tempfile

    os.environ["SFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="sft-test-cache-")

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Tests save only what they check. A checkpoint of 2 of MiniLM's layers with the optimizer state that a resume needs is
# 180 MB (the model alone is 61 MB): the test jobs keep one (save_total_limit=1), and the runs that neither resume nor
# look at their checkpoints also write only one, at the end: under a save_steps past the last step the Trainer saves
# once, when training ends (transformers 4.56 and 5.x).
SAVE_ONCE = {"save_steps": 100_000}


# The files that keep a worker longest (their fine-tunes; a worker's seconds with three workers on a 2-vCPU Zen 4,
# 2026-12-07, less what later trims took out), run first: pytest-xdist's --dist loadfile hands files out in collection
# order, and one of these started last would run alone at the end while the other workers sat idle. Every other file
# keeps its place.
LONGEST_FIRST = ("backends/test_train_local.py",      # 220 s
                 "grid/test_grid.py",                 # 217 s
                 "entrypoint/test_container.py",      # 188 s
                 "tuning/test_tune.py",               # 175 s
                 "test_examples.py",                  # about 120 s
                 "backends/test_objective_local.py")  # 111 s


def pytest_collection_modifyitems(config, items) -> None:
    here = Path(__file__).parent
    rank = {here / name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))  # stable: each file's tests stay in their order


def in_ci() -> bool:
    """True where CI runs the tests: .ci/run sets CI=true (as GitHub Actions and most CI services do)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test whose missing piece (an interpreter, a module, /opt/ml) may be missing here; fail under CI=true.

    CI builds every piece, so there a missing one is a broken build, not a reason to pass quietly.
    """
    if in_ci():
        pytest.fail(f"{reason}; CI=true, where it must be there", pytrace=False)
    pytest.skip(reason)


def env_python(name: str) -> str:
    """The interpreter that CI names in the environment variable ``name`` (.ci/run builds it); see skip_or_fail."""
    python = os.environ.get(name)
    if not python:
        skip_or_fail(f"{name} is not set (CI sets it)")
    return python


@pytest.fixture(params=[pytest.param(None, id="installed"), pytest.param("SFT_COMPAT_PYTHON", id="transformers-4.56")])
def python(request) -> str:
    """This venv's interpreter, then the V100 image's transformers 4.56.2 one (CI's SFT_COMPAT_PYTHON; see env_python)."""
    return sys.executable if request.param is None else env_python(request.param)


def small_job(train: int = 400, test: int = 200, epochs: float = 3, **hp: object):
    """A real fine-tune sized for CI: BBC News, 5 classes, 2 of MiniLM's 6 layers, one checkpoint kept."""
    import sagefinetune as sft

    settings = {"epochs": epochs, "batch_size": 16, "learning_rate": 2e-4, "max_length": 64, "save_total_limit": 1,
                **hp}
    return (
        sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=train, test=test, seed=1))
        .model(MODEL, num_hidden_layers=2)
        .hyperparameters(**settings)
    )


def once_per_test_run(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """The folder ``name`` that ``make(folder)`` fills once for the whole test run.

    Under pytest-xdist the workers share it: it sits above each worker's own temporary folder, the first worker to
    ask makes it while the others wait on a file lock, and they read what it made. In one process it is this session's.
    """
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-of-<user>/pytest-<n>/, the parent of every worker's popen-gw<k>/
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            make(folder)
            done.touch()
    return folder


def trained_once(folder: Path, python: str | None = None, check: bool = True) -> None:
    """:func:`small_job` trained into ``folder`` (by ``python``'s entry point), then (``check``) the check at deploy
    run on it, so that the tests that deploy it, in any worker, find serving.json written and never write it at once."""
    from sagefinetune.backends.local import LocalBackend
    from sagefinetune.runtime.serving_check import check_serving

    job = small_job()
    LocalBackend(python=python or sys.executable).fit(job, job.plan(), run_dir=folder, progress=False)
    if check:
        check_serving(folder / "model")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One real fine-tune shared by the tests that only read its results (by every worker under pytest-xdist)."""
    from sagefinetune.run import TrainingRun

    folder = once_per_test_run(tmp_path_factory, "bbc", trained_once)
    return TrainingRun.from_run_dir(folder, small_job().plan())


@pytest.fixture(scope="session")
def tf456_run(tmp_path_factory):
    """The same fine-tune by the entry point on the V100 image's transformers (4.56.2): CI's .venv-tf456, named by
    SFT_COMPAT_PYTHON (skipped where it is not set)."""
    from sagefinetune.run import TrainingRun

    python = env_python("SFT_COMPAT_PYTHON")
    folder = once_per_test_run(tmp_path_factory, "tf456", lambda f: trained_once(f, python, check=False))
    return TrainingRun.from_run_dir(folder, small_job().plan())


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


# ---- a local Hugging Face Hub (tests/hub_server.py) -------------------------------------------------------------
HUB_TOKEN = "hf_sftTestWrite0a1b2c3d4e5f6a7b8c9d"  # alice, write
HUB_READ_TOKEN = "hf_sftTestRead9f8e7d6c5b4a39281706"  # alice, read-only
HUB_OTHER_TOKEN = "hf_sftTestBob00112233445566778899aa"  # bob, write


@pytest.fixture(scope="session")
def hub_server():
    """The Hub's write and read API on 127.0.0.1 (uvicorn + starlette in a thread), repos in a temporary folder."""
    import hub_server

    hub, server = hub_server.start({HUB_TOKEN: ("alice", "write"), HUB_READ_TOKEN: ("alice", "read"),
                                    HUB_OTHER_TOKEN: ("bob", "write")})
    yield hub
    server.should_exit = True


@pytest.fixture
def hub(hub_server, monkeypatch, tmp_path):
    """huggingface_hub in this process pointed at the local Hub, logged in as alice (HF_TOKEN); undone after the test.

    huggingface_hub copies HF_ENDPOINT and HF_HUB_OFFLINE into ``huggingface_hub.constants`` when it is first imported,
    and the tests import it with HF_HUB_OFFLINE=1. Every request it makes reads ``constants.ENDPOINT``,
    ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` and ``constants.is_offline_mode()`` at call time, so patching those
    module attributes (not the environment alone) points this process at the server; HF_ENDPOINT is set too, because
    push_to_hub reads it when it pushes. Xet is switched off (the server speaks the git-LFS batch API). The token
    file path is moved to an empty folder so no login of the machine's user can leak in. Code that must see the
    server exactly as a user's fresh process does (loading a pushed model back) runs in a subprocess with HF_ENDPOINT
    set instead; see tests/test_hub.py.
    """
    from huggingface_hub import constants

    url = hub_server.url
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-login" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-login" / "stored_tokens"))
    return hub_server


def measured_speed(**values):
    """A LocalSpeed as a probe would measure it (the estimate and grid tests time local plans with it)."""
    from sagefinetune.cost.local_speed import LocalSpeed

    base = dict(key="k", settings={}, startup_s=8.0, step_s=0.25, save_s=0.5, eval_row_s=0.01, final_s=2.0,
                probe_steps=16, measured_at="2026-11-22 10:00")
    return LocalSpeed(**{**base, **values})


@pytest.fixture
def hub_data(hub, monkeypatch, tmp_path):
    """:func:`hub`, with 🤗 datasets in this process reading from it too, and empty download caches for the test.

    datasets copies HF_ENDPOINT and HF_HUB_OFFLINE into ``datasets.config`` when it is imported (the tests import it
    offline), so those are patched like huggingface_hub's constants (and HF_HUB_OFFLINE=0 is set, which sagefinetune's
    messages read); the download count ping (a HEAD to S3) is off. The caches of both libraries move to the test's
    folder, so what a test loads comes through the server (a file an earlier test cached by its commit would be read
    with no request at all). Dataset repos are added with ``hub.add_commit`` and the builders in tests/hub_datasets.py.
    """
    import datasets
    from huggingface_hub import constants

    downloads = tmp_path / "hf-datasets" / "downloads"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", downloads)
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", downloads / "extracted")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    return hub
