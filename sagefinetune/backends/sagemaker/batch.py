"""SageMaker batch transform: the same handler as the endpoints, over JSON Lines in S3.

The input is JSON Lines, one input per line (``{"inputs": "a text"}``, the very lines a local
``batch_predict`` reads: :func:`sagefinetune.serving.jsonlines_records`). SageMaker splits the file by line and sends
several lines per request (BatchStrategy MultiRecord, ``application/jsonlines``): sagefinetune's handler
(``code/inference.py`` in every model it trains) reads JSON Lines and runs them as one batch, and answers one JSON
line per input (AssembleWith Line), in input order, in ``<input file>.out`` - the same lines a local run writes. The job gets its
own Model (named like the job, tagged ``sagefinetune:kind=batch``), deleted again when the job has ended.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagefinetune.backends.batch_result import BatchResult
from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.backends.sagemaker.endpoints import ServingBackend
from sagefinetune.backends.sagemaker.s3_content import exists
from sagefinetune.core.console import say, upload_bar
from sagefinetune.entrypoint.inference import JSONLINES as JSONLINES_TYPES
from sagefinetune.errors import CredentialsError, DataError, ServingError
from sagefinetune.plans.deploy import ModelRef
from sagefinetune.plans.transform import TransformSpec, plan_transform

INPUT_FILE = "input.jsonl"
JSONLINES = JSONLINES_TYPES[0]  # "application/jsonlines", what SageMaker's batch transform documents
TERMINAL = ("Completed", "Failed", "Stopped")


def transform(backend: ServingBackend, model: ModelRef, data: Any, options: Mapping[str, Any], *,
              run_role: str | None = None, artifact_bucket: str | None = None) -> BatchResult:
    """Check everything, write and upload the input, create the Model and the transform job, and (by default) wait."""
    if backend.region is None:
        raise CredentialsError("no AWS region. Fix: export AWS_DEFAULT_REGION=us-east-1, or batch_predict(..., "
                               "region=...).")
    spec = plan_transform(model, data, region=backend.region, **options)
    backend.aws.check_credentials()
    role = backend.resolve_role(spec.model.role, run_role)
    lines = input_lines(data, spec.split) if spec.source == "rows" else None  # rows read and checked before any upload
    if lines is None:
        check_remote_input(backend, spec.source)
    bucket = spec.model.bucket or artifact_bucket or (spec.source[5:].split("/", 1)[0] if lines is None else None) \
        or backend.default_bucket()
    input_uri = upload_lines(backend, lines, bucket, spec.model.prefix) if lines is not None else spec.source
    model_data = backend.model_data(spec.model, artifact_bucket)
    name = spec.model.name
    output = spec.output_path or f"s3://{bucket}/{spec.model.prefix}/batch-output/{name}/"
    say(f"creating batch transform job {name} ({spec.model.instance_count} x {spec.model.instance}): "
         f"{spec.model.cost_line}, while it runs; {input_uri} -> {output}", backend.progress)
    backend.create_model(spec.model, role, model_data)
    try:
        create_job(backend, spec, input_uri, output)
    except BaseException:
        backend.delete_resources(None, None, (name,))
        raise
    result = BatchResult(output, job_name=name, input_uri=input_uri, instance=spec.model.instance,
                         rows=len(lines) if lines is not None else None, status="InProgress",
                         _download=lambda path: download(backend, output, path or Path("sft-runs") / name / "batch"))
    result._wait = lambda: wait(backend, spec, result, options.get("timeout"))
    if not options.get("wait", True):
        return result
    result.wait()
    if spec.download:
        result.download(spec.path)
    return result


def input_lines(data: Any, split: str | None) -> list[bytes]:
    """One JSON line per row of a Dataset's split, or per text of a list: the lines a local batch_predict reads."""
    from sagefinetune.serving import jsonlines_records

    return [line.rstrip("\n").encode("utf-8") for line in jsonlines_records(data, split=split or "test")]


def check_remote_input(backend: ServingBackend, uri: str) -> None:
    """Input already in S3 must be JSON Lines whose lines are requests (``{"inputs": ...}``): read the first line."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3 = backend.client("s3")
    with aws_errors(f"ListObjectsV2 {uri}"):
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    keys = sorted(o["Key"] for o in listing.get("Contents", []) if not o["Key"].endswith("/"))
    if not keys:
        raise DataError(f"{uri} holds no files. Fix: check the URI, or pass the rows (a Dataset or a list of texts).")
    with aws_errors(f"GetObject s3://{bucket}/{keys[0]}"):
        head = s3.get_object(Bucket=bucket, Key=keys[0], Range="bytes=0-65535")["Body"].read().decode("utf-8", "replace")
    first = head.splitlines()[0] if head else ""
    try:
        request = json.loads(first)
    except ValueError:
        request = None
    one_input = isinstance(request, str) or (isinstance(request, dict) and "inputs" in request) or (
        isinstance(request, list) and len(request) == 2 and all(isinstance(t, str) for t in request))
    if not one_input:
        found = sorted(request) if isinstance(request, dict) else first[:80]
        raise DataError(f"batch transform reads s3://{bucket}/{keys[0]} as JSON Lines, one input per line, so each line "
                        f"must be a JSON object with 'inputs' (or a JSON text); its first line has {found!r}. Fix: write "
                        'lines like {"inputs": "a text"}, or pass the rows here (a Dataset or a list of texts) to have '
                        "them written and uploaded.")


def upload_lines(backend: ServingBackend, lines: list[bytes], bucket: str, prefix: str) -> str:
    """Upload the JSON Lines under a content-addressed prefix (skipped when the same lines are there)."""
    body = b"\n".join(lines) + b"\n"
    key = f"{prefix}/batch-input/{hashlib.sha256(body).hexdigest()[:16]}/{INPUT_FILE}"
    s3 = backend.client("s3")
    if exists(s3, bucket, key):
        say(f"s3://{bucket}/{key} is already uploaded ({len(lines)} rows); skipping", backend.progress)
    else:
        with tempfile.TemporaryDirectory(prefix="sagefinetune-batch-") as tmp:
            path = Path(tmp) / INPUT_FILE
            path.write_bytes(body)
            with aws_errors("PutObject"), upload_bar(f"upload {len(lines)} rows", len(body), backend.progress) as cb:
                s3.upload_file(str(path), bucket, key, Callback=cb)
    return f"s3://{bucket}/{key.rsplit('/', 1)[0]}/"


def create_job(backend: ServingBackend, spec: TransformSpec, input_uri: str, output: str) -> None:
    from sagemaker.core.resources import TransformJob
    from sagemaker.core.shapes import (
        TransformDataSource,
        TransformInput,
        TransformOutput,
        TransformResources,
        TransformS3DataSource,
    )

    model = spec.model
    source = TransformDataSource(s3_data_source=TransformS3DataSource(s3_data_type="S3Prefix", s3_uri=input_uri))
    with aws_errors("CreateTransformJob"):
        TransformJob.create(
            transform_job_name=model.name, model_name=model.name,
            transform_input=TransformInput(data_source=source, content_type=JSONLINES, split_type="Line"),
            transform_output=TransformOutput(s3_output_path=output, accept=JSONLINES, assemble_with="Line"),
            transform_resources=TransformResources(instance_type=str(model.instance), instance_count=model.instance_count),
            batch_strategy="MultiRecord", max_concurrent_transforms=spec.max_concurrent,
            tags=model.core_tags(), session=backend.aws.boto, region=backend.region)


def wait(backend: ServingBackend, spec: TransformSpec, result: BatchResult, timeout: float | None) -> BatchResult:
    """Follow the job to its end; delete its Model; raise with SageMaker's reason if it failed."""
    name, started, last = spec.model.name, time.time(), ""
    while True:
        with aws_errors("DescribeTransformJob"):
            d = backend.client("sagemaker").describe_transform_job(TransformJobName=name)
        status = str(d["TransformJobStatus"])
        if status != last:
            say(f"{name}: {status}", backend.progress)
            last = status
        if status in TERMINAL:
            break
        if timeout is not None and time.time() - started > timeout:
            raise ServingError(f"batch transform job {name} is still {status} after {timeout:.0f}s. Fix: "
                               "result.wait() later; the job goes on and is billed while it runs.", name=name,
                               reason=status, operation="DescribeTransformJob")
        time.sleep(backend.poll_seconds)
    for item in backend.delete_resources(None, None, (name,)):
        say(f"deleted {item} (made for this job)", backend.progress)
    if status != "Completed":
        reason = d.get("FailureReason") or status
        raise ServingError(f"batch transform job {name} {status.lower()}: {reason}. Fix: read CloudWatch "
                           f"/aws/sagemaker/TransformJobs/{name}.", name=name, reason=reason,
                           operation="CreateTransformJob")
    start, end = d.get("TransformStartTime"), d.get("TransformEndTime")
    result.status = status
    if start is not None and end is not None and spec.model.hourly_cost is not None:
        result.seconds = (end - start).total_seconds()
        result.cost_usd = result.seconds / 3600 * spec.model.hourly_cost * spec.model.instance_count
    return result


def download(backend: ServingBackend, output: str, folder: Path) -> Path:
    """Every ``.out`` file under the output prefix into ``folder``; returns the one file, or the folder."""
    bucket, _, prefix = output[len("s3://"):].partition("/")
    s3 = backend.client("s3")
    with aws_errors(f"ListObjectsV2 {output}"):
        pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
    keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".out"))
    if not keys:
        raise ServingError(f"no answers (.out files) under {output}. Fix: check that the job completed "
                           "(result.status) and its logs.", operation="ListObjectsV2")
    folder.mkdir(parents=True, exist_ok=True)
    for key in keys:
        with aws_errors(f"GetObject s3://{bucket}/{key}"):
            s3.download_file(bucket, key, str(folder / key.rsplit("/", 1)[-1]))
    return folder / keys[0].rsplit("/", 1)[-1] if len(keys) == 1 else folder
