"""SageMaker's training container contract, played on this machine with the SDK's own driver.

A ``fit()`` against the moto server leaves a CreateTrainingJob request (recorded as it was sent) and the S3 objects
it points to: the data channels, the ``code`` channel (our entry point) and the ``sm_drivers`` channel (the SDK's
``sm_train.sh``, ``scripts/environment.py``, the basic and torchrun drivers, sourcecode.json, distributed.json).
From those two, :func:`build` lays out ``/opt/ml`` the way SageMaker does on the instance:

    /opt/ml/input/data/<channel>/        every object under the channel's S3 prefix
    /opt/ml/input/config/                hyperparameters.json (the request's, as strings), inputdataconfig.json,
                                         resourceconfig.json, checkpointconfig.json
    /opt/ml/model  /opt/ml/output/data  /opt/ml/checkpoints (CheckpointConfig.LocalPath)

and :func:`start` runs the request's ContainerEntrypoint + ContainerArguments (``/bin/bash -c "... sm_train.sh"``)
with the environment SageMaker gives the container (:func:`environment`). What differs from an instance, and why:
no GPU (``nvidia-smi`` is absent, so the driver sets SM_NUM_GPUS=0 and the entry point trains in fp32 on the CPU);
python3, pip3 and torchrun come from this virtualenv instead of the image's; the Hub is offline (the model comes
from its PyPI package); pip may not reach an index (the requirements are already installed: pip only checks them,
and the shared virtualenv cannot change); torchrun gets a free port (this machine is shared).

The drivers hard-code ``/opt/ml``, so that exact path is used; :func:`claim` owns it for the length of a test and
removes the whole tree afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OPT_ML = Path("/opt/ml")
MARKER = ".sagefinetune-container-test"  # written into /opt/ml: a tree holding it is ours to remove
HOST = "algo-1"
VENV_BIN = Path(sys.executable).parent  # python3, pip3, torchrun


# ---- owning /opt/ml -------------------------------------------------------------------------------------------
def why_not_usable(root: Path = OPT_ML) -> str | None:
    """None when ``root`` can be made and removed here; else the reason (for pytest.skip)."""
    if root.exists() and not (root / MARKER).exists():
        return f"{root} exists and was not made by this test; it is left alone"
    parent = root.parent
    if not root.exists() and not os.access(parent if parent.exists() else parent.parent, os.W_OK):
        return f"{root} cannot be created here (no write access to {parent})"
    return None


@contextlib.contextmanager
def claim(root: Path = OPT_ML) -> Iterator[Path]:
    """Make ``root`` for one test and remove the whole tree afterwards, whatever happens."""
    shutil.rmtree(root, ignore_errors=True)  # only reached when why_not_usable() said it is ours (a killed earlier run)
    try:
        root.mkdir(parents=True)
        (root / MARKER).write_text("made by tests/test_container.py; removed when the test ends\n")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- /opt/ml from the request and S3 ----------------------------------------------------------------------------
def s3_prefix(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix


def download_prefix(s3: Any, uri: str, target: Path) -> list[Path]:
    """Every object under ``uri`` (an S3Prefix channel) into ``target``, keeping the paths below the prefix."""
    bucket, prefix = s3_prefix(uri)
    written = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):].lstrip("/")
            if not relative or relative.endswith("/"):
                continue
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(path))
            written.append(path)
    return written


def input_data_config(request: dict[str, Any]) -> dict[str, Any]:
    """inputdataconfig.json: one entry per channel, as SageMaker writes it."""
    mode = request["AlgorithmSpecification"].get("TrainingInputMode", "File")
    out = {}
    for channel in request["InputDataConfig"]:
        source = channel["DataSource"]["S3DataSource"]
        entry = {"TrainingInputMode": channel.get("InputMode", mode),
                 "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                 "RecordWrapperType": channel.get("RecordWrapperType", "None")}
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        out[channel["ChannelName"]] = entry
    return out


def resource_config(request: dict[str, Any]) -> dict[str, Any]:
    """resourceconfig.json for the first host of the job."""
    resources = request["ResourceConfig"]
    hosts = [f"algo-{i + 1}" for i in range(int(resources["InstanceCount"]))]
    return {"current_host": HOST, "current_instance_type": resources["InstanceType"],
            "current_group_name": "homogeneousCluster", "hosts": hosts,
            "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                 "instance_type": resources["InstanceType"], "hosts": hosts}],
            "network_interface_name": "eth0"}


def checkpoint_dir(request: dict[str, Any], root: Path = OPT_ML) -> Path:
    local = (request.get("CheckpointConfig") or {}).get("LocalPath", "/opt/ml/checkpoints")
    return root / Path(local).relative_to(OPT_ML)


def build(request: dict[str, Any], s3: Any, root: Path = OPT_ML, *, process_count_per_node: int | None = None) -> None:
    """Lay out ``root`` (``/opt/ml``) as SageMaker does before it starts the container.

    ``process_count_per_node`` rewrites the SDK's distributed.json (there are no GPUs here to count).
    """
    for channel in request["InputDataConfig"]:
        target = root / "input" / "data" / channel["ChannelName"]
        target.mkdir(parents=True, exist_ok=True)
        if not download_prefix(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], target):
            raise AssertionError(f"channel {channel['ChannelName']} is empty in S3")
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    files = {"hyperparameters.json": request.get("HyperParameters", {}),
             "inputdataconfig.json": input_data_config(request),
             "resourceconfig.json": resource_config(request)}
    if request.get("CheckpointConfig"):
        files["checkpointconfig.json"] = request["CheckpointConfig"]
    for name, content in files.items():
        (config / name).write_text(json.dumps(content))
    for folder in (root / "model", root / "output" / "data", checkpoint_dir(request, root)):
        folder.mkdir(parents=True, exist_ok=True)
    if process_count_per_node is not None:
        distributed = root / "input" / "data" / "sm_drivers" / "distributed.json"
        settings = json.loads(distributed.read_text())
        settings["process_count_per_node"] = process_count_per_node
        distributed.write_text(json.dumps(settings))


def rebuild_keeping_checkpoints(request: dict[str, Any], s3: Any, root: Path, scratch: Path, **kwargs: Any) -> None:
    """A restarted job (spot interruption): a fresh ``/opt/ml``, with the checkpoints SageMaker syncs back from S3."""
    kept = scratch / "checkpoints"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(checkpoint_dir(request, root), kept)
    for child in root.iterdir():
        if child.name != MARKER:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    build(request, s3, root, **kwargs)
    shutil.rmtree(checkpoint_dir(request, root))
    shutil.copytree(kept, checkpoint_dir(request, root))


# ---- the container's process ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(request: dict[str, Any], bin_dir: Path = VENV_BIN) -> dict[str, str]:
    """The container's environment: what SageMaker sets, the image's own, and this machine's differences.

    ``bin_dir`` holds the python3, pip3 and torchrun that stand in for the image's (first on PATH).
    """
    name = request["TrainingJobName"]
    env = {
        # the image (Hugging Face DLC) sets these
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "UTF-8",
        # SageMaker sets these
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        # this machine: no Hub; pip only checks the installed requirements; a free port for torchrun's store
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PET_MASTER_PORT": str(free_port()),
    }
    env.update(request.get("Environment") or {})
    return env


def command(request: dict[str, Any]) -> list[str]:
    spec = request["AlgorithmSpecification"]
    return list(spec["ContainerEntrypoint"]) + list(spec.get("ContainerArguments") or [])


def start(request: dict[str, Any], log: Path, bin_dir: Path = VENV_BIN) -> subprocess.Popen[bytes]:
    """Start the container's entry point in a new process group; stdout and stderr go to ``log`` (CloudWatch's view)."""
    with open(log, "ab") as out:
        return subprocess.Popen(command(request), cwd="/", env=environment(request, bin_dir), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def run(request: dict[str, Any], log: Path, bin_dir: Path = VENV_BIN, timeout: float = 600) -> int:
    """Run the container to its end; the exit status."""
    proc = start(request, log, bin_dir)
    try:
        return proc.wait(timeout=timeout)
    except BaseException:  # a timeout or Ctrl-C: leave no training processes behind
        kill(proc)
        raise


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group (bash, the driver, torchrun and its workers), as an instance loss would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def wait_for(predicate: Any, proc: subprocess.Popen[bytes], timeout: float, poll: float = 0.05) -> bool:
    """Poll ``predicate()`` until it holds, the process ends, or ``timeout`` seconds pass."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


# ---- what SageMaker reads from the log ---------------------------------------------------------------------
def metric_series(definitions: list[dict[str, str]], text: str) -> dict[str, list[float]]:
    """Each metric definition's regex applied to every log line, as SageMaker does: name -> values in order."""
    series: dict[str, list[float]] = {d["Name"]: [] for d in definitions}
    compiled = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    for line in text.splitlines():
        for name, regex in compiled:
            m = regex.search(line)
            if m:
                series[name].append(float(m.group(1)))
    return series
