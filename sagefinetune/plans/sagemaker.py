"""The SageMaker half of a plan: checked options, image, channels, spot, security, cost. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.core.checks import boolean, bucket_name, id_list, positive_number, string_mapping
from sagefinetune.entrypoint.contract import HYPERPARAMETERS, decode_value, driver_round_trip
from sagefinetune.entrypoint.redaction import is_secret_name, redact
from sagefinetune.errors import ConfigError, did_you_mean
from sagefinetune.facts import images
from sagefinetune.facts.instances import PRICE_SOURCE, SPOT_FACTOR, lookup
from sagefinetune.facts.models import model_source

if TYPE_CHECKING:
    from sagefinetune.job import Job

MAX_RUN_LIMIT = 28 * 24 * 3600  # SageMaker's ceiling for MaxRuntimeInSeconds
DEFAULT_MAX_RUN = 24 * 3600
DEFAULT_PREFIX = "sagefinetune"
DEFAULT_BUCKET = "<default bucket>"  # placeholders the backend fills in at fit, when they are known
DATA_HASH = "<data hash>"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
OPTIONS = (
    "spot", "max_run", "max_wait", "checkpoint_s3", "volume_size", "tags", "role", "region", "bucket", "prefix",
    "subnets", "security_groups", "network_isolation", "volume_kms_key", "output_kms_key", "encrypt_inter_node",
    "environment", "transformers_version", "price_per_hour",
)
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
SECRET_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{20,})\b")


@dataclass(frozen=True)
class CostEstimate:
    """On-demand price from the dated table; spot as an estimate. ``max_usd`` is the ceiling at max_run."""

    price_per_hour: float
    nodes: int
    hourly_usd: float
    max_usd: float
    spot_hourly_usd: float | None
    source: str

    def line(self) -> str:
        spot = f"; spot about ${self.spot_hourly_usd:.2f}/h (estimate)" if self.spot_hourly_usd is not None else ""
        return (f"${self.price_per_hour:.3f}/h x {self.nodes} node(s) = ${self.hourly_usd:.2f}/h on demand{spot}; "
                f"at most ${self.max_usd:.2f} at max_run [{self.source}]")


@dataclass(frozen=True)
class SageMakerSpec:
    region: str
    training_image: str
    inference_image: str
    image: images.ImagePair
    gpus_per_node: int
    gpu: str
    precision: str
    distribution: str | None  # "torchrun" when more than one process in all
    channels: Mapping[str, str]  # channel -> s3 URI, or a description of what fit() uploads
    spot: bool
    max_run: int
    max_wait: int | None
    checkpoint_s3: str
    volume_size: int
    tags: Mapping[str, str]
    role: str | None
    bucket: str | None
    prefix: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    network_isolation: bool
    volume_kms_key: str | None
    output_kms_key: str | None
    encrypt_inter_node: bool
    environment: Mapping[str, str]
    install_requirements: bool
    cost: CostEstimate
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("channels", "tags", "environment"):
            out[key] = dict(out[key])
        for key in ("subnets", "security_groups", "notes"):
            out[key] = list(out[key])
        out["cost"] = dict(self.cost.__dict__)
        out["image"] = dict(self.image.__dict__)
        return out

    def lines(self) -> list[str]:
        lines = [
            f"  image        {self.training_image}",
            f"               ({self.image.label}; serving: {self.inference_image})",
            f"  processes    {self.gpus_per_node} per node ({self.gpus_per_node} x {self.gpu}), "
            f"{self.distribution or 'single process'}, precision {self.precision}",
            "  channels     " + "; ".join(f"{k}: {v}" for k, v in self.channels.items()),
            f"  stopping     max_run {_human(self.max_run)}"
            + (f", max_wait {_human(self.max_wait)}" if self.max_wait else ""),
            f"  spot         {'on (managed spot; resumes from checkpoints)' if self.spot else 'off'}",
            f"  checkpoints  {self.checkpoint_s3} <-> {CHECKPOINT_LOCAL_PATH}",
            f"  role         {self.role or '(from the SDK config or SAGEMAKER_ROLE at fit)'}",
            f"  storage      {self.volume_size} GB volume" + (f", volume KMS {self.volume_kms_key}" if self.volume_kms_key else "")
            + (f", output KMS {self.output_kms_key}" if self.output_kms_key else ""),
            "  network      " + ", ".join(filter(None, [
                f"VPC subnets {list(self.subnets)} security groups {list(self.security_groups)}" if self.subnets else "no VPC",
                "network isolation" if self.network_isolation else "",
                "inter-node encryption" if self.encrypt_inter_node else "",
            ])),
            f"  cost         {self.cost.line()}",
        ]
        if self.tags:
            lines.append("  tags         " + ", ".join(f"{k}={v}" for k, v in self.tags.items()))
        lines += [f"  note         {n}" for n in self.notes]
        return lines


def parse_duration(value: Any, name: str) -> int:
    """Seconds from 3600, "90m", "4h", "2d" or "1h30m"."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not a duration. Fix: seconds (7200) or text ('2h', '90m').")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ConfigError(f"{name}={value!r} is not a duration. Fix: seconds (7200) or text ('2h', '90m').")
        seconds = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*(\d+\s*[dhms]\s*)+", value):
        units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)\s*([dhms])", value))
    else:
        raise ConfigError(f"{name}={value!r} is not a duration. Fix: seconds (7200) or text ('2h', '90m', '1d').")
    if not 0 < seconds <= MAX_RUN_LIMIT:
        raise ConfigError(f"{name}={value!r} is {seconds}s; SageMaker allows 1s to 28 days. Fix: a duration in that range.")
    return seconds


def _human(seconds: int | None) -> str:
    if not seconds:
        return "-"
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if rest else f"{h}h"


def check_no_secrets(values: Mapping[str, str], where: str) -> None:
    """Refuse values that SageMaker would record in plain text and that look like secrets: a secret's name
    (:func:`~sagefinetune.entrypoint.redaction.is_secret_name`: ``HF_TOKEN``, but not ``cache_tokens``) or a value
    that the redaction would mask (a Hub token, AWS keys, ``api_key=...`` inside it)."""
    for key, value in values.items():
        if is_secret_name(key) or SECRET_VALUE.search(str(value)) or redact(str(value)) != str(value):
            raise ConfigError(
                f"{where} {key!r} looks like a secret; SageMaker records {where}s in plain text (DescribeTrainingJob, "
                "the console, logs). Fix: keep tokens out of the job: use a public model, give the model as an S3 "
                "folder (.model('s3://...')), or read the secret in the script from AWS Secrets Manager."
            )


def job_fingerprint(job: Job, hyperparameters: Mapping[str, str]) -> str:
    """Stable across launches of the same Job's settings; the rows' own hash is added at fit."""
    data = json.dumps({"hp": dict(hyperparameters), "model": job.model_id}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:10]


def sagemaker_spec(job: Job, *, instance: str, nodes: int, hyperparameters: Mapping[str, str], job_name: str,
                   **options: Any) -> tuple[SageMakerSpec, int]:
    check_options(options)
    inst = lookup(instance)
    pair = images.choose(inst, options.get("transformers_version"))
    region = options.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ConfigError(f"region={region!r} is not an AWS region name. Fix: region='us-east-1'.")
    spot, max_run, max_wait = _stopping(options)
    check_driver_round_trip(hyperparameters)
    check_no_secrets(hyperparameters, "hyperparameter")
    tags, environment = _recorded(options, job_name)
    subnets, groups, isolation, encrypt, notes = _network(job, options, nodes)
    bucket = bucket_name(options.get("bucket"))
    prefix = s3_prefix(options.get("prefix"))
    root = f"s3://{bucket or DEFAULT_BUCKET}/{prefix}"
    channels = _channels(job, root)
    # the same Job on the same rows resumes from its checkpoints when launched again; anything else starts fresh
    checkpoint = (options.get("checkpoint_s3")
                  or f"{root}/checkpoints/{job_name}-{job_fingerprint(job, hyperparameters)}/{DATA_HASH}/")
    if not isinstance(checkpoint, str) or not checkpoint.startswith("s3://"):
        raise ConfigError(f"checkpoint_s3={checkpoint!r} must be an s3:// URI. Fix: checkpoint_s3='s3://bucket/ckpt/'.")
    role = options.get("role")
    if role is not None and (not isinstance(role, str) or not role.startswith("arn:aws")):
        raise ConfigError(f"role={role!r} is not an IAM role ARN. Fix: role='arn:aws:iam::<account>:role/<name>'.")
    spec = SageMakerSpec(
        region=region, training_image=images.uri(pair, region), inference_image=images.uri(pair, region, "inference", "gpu"),
        image=pair, gpus_per_node=inst.gpus, gpu=inst.gpu,
        precision="bf16" if inst.bf16 else "fp16", distribution="torchrun" if inst.gpus * nodes > 1 else None,
        channels=MappingProxyType(channels), spot=spot, max_run=max_run, max_wait=max_wait, checkpoint_s3=checkpoint,
        volume_size=_volume(options.get("volume_size", 30)), tags=MappingProxyType(tags), role=role, bucket=bucket,
        prefix=prefix, subnets=subnets, security_groups=groups, network_isolation=isolation,
        volume_kms_key=_kms(options, "volume_kms_key"), output_kms_key=_kms(options, "output_kms_key"),
        encrypt_inter_node=encrypt, environment=MappingProxyType(environment), install_requirements=not isolation,
        cost=_cost(inst, nodes, spot, max_run, options.get("price_per_hour")), notes=tuple(notes),
    )
    return spec, inst.gpus


def check_options(options: Mapping[str, Any]) -> None:
    """Every option is a SageMaker option; a hyperparameter given here is pointed to .hyperparameters()."""
    from sagefinetune.plans.hyperparameters import USER_HYPERPARAMETERS

    for name in sorted(set(options) - set(OPTIONS)):
        if name in USER_HYPERPARAMETERS:
            raise ConfigError(f"{name} is a hyperparameter, not an option of fit()/plan(); got {name}={options[name]!r}. "
                              f"Fix: job.hyperparameters({name}={options[name]!r}).fit(...).")
        raise ConfigError(f"unknown option {name!r}{did_you_mean(name, OPTIONS)} Fix: one of {', '.join(OPTIONS)}.")


def check_driver_round_trip(hyperparameters: Mapping[str, str]) -> None:
    """Refuse values that SageMaker's container driver would hand the script changed (see contract.driver_round_trip)."""
    for name, value in hyperparameters.items():
        param = HYPERPARAMETERS.get(name)
        if param is None:
            continue
        arrives = driver_round_trip(value)
        if param.parse(decode_value(arrives)) != param.parse(decode_value(value)):
            raise ConfigError(
                f"hyperparameter {name}={decode_value(value)!r} would reach the training job as {decode_value(arrives)!r}: "
                "SageMaker's container driver reads every value as JSON when it can. Fix: rename it (a column name "
                "that is not a JSON number, true/false or null), e.g. with a renamed column in your files."
            )


def _stopping(options: Mapping[str, Any]) -> tuple[bool, int, int | None]:
    """spot, max_run and max_wait (seconds), with spot's rule max_wait >= max_run."""
    spot = boolean("spot", options.get("spot", False), ".fit(..., spot=True)")
    max_run = parse_duration(options.get("max_run", DEFAULT_MAX_RUN), "max_run")
    if options.get("max_wait") is not None:
        if not spot:
            raise ConfigError(f"max_wait={options['max_wait']!r} applies to spot jobs only. "
                              "Fix: .fit(..., spot=True) or drop max_wait.")
        max_wait = parse_duration(options["max_wait"], "max_wait")
        if max_wait < max_run:
            raise ConfigError(
                f"spot=True needs max_wait >= max_run; got max_wait={max_wait}s, max_run={max_run}s. "
                f"Fix: .fit(..., max_wait=\"{_human(max_run * 2)}\") or spot=False."
            )
        return spot, max_run, max_wait
    if not spot:
        return spot, max_run, None
    if max_run >= MAX_RUN_LIMIT:
        raise ConfigError(f"spot=True needs room to wait for capacity, but max_run={max_run}s leaves none below "
                          "SageMaker's 28-day ceiling. Fix: a shorter max_run.")
    return spot, max_run, min(2 * max_run, MAX_RUN_LIMIT)


def _recorded(options: Mapping[str, Any], job_name: str) -> tuple[dict[str, str], dict[str, str]]:
    """Tags and environment: SageMaker records both in plain text, so neither may hold a secret."""
    tags = string_mapping("tags", options.get("tags"), "tags={'team': 'nlp'}")
    check_no_secrets(tags, "tag")
    tags.setdefault("sagefinetune:job", job_name)
    environment = string_mapping("environment", options.get("environment"), "environment={'MY_FLAG': '1'}")
    check_no_secrets(environment, "environment variable")
    return tags, environment


def _network(job: Job, options: Mapping[str, Any], nodes: int) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool, list[str]]:
    subnets = id_list("subnets", options.get("subnets"), "subnet-")
    groups = id_list("security_groups", options.get("security_groups"), "sg-")
    if bool(subnets) != bool(groups):
        raise ConfigError(f"a VPC needs both subnets and security_groups; got subnets={list(subnets)}, "
                          f"security_groups={list(groups)}. Fix: give both, or neither.")
    isolation = boolean("network_isolation", options.get("network_isolation", False), "network_isolation=True")
    encrypt = boolean("encrypt_inter_node", options.get("encrypt_inter_node", False), "encrypt_inter_node=True")
    notes = []
    if isolation and model_source(job.model_id) == "hub":
        raise ConfigError(
            f"network_isolation=True: the job cannot download {job.model_id!r} from the Hub. "
            "Fix: .model('s3://bucket/path/') or .model('<local folder>') (uploaded as the model channel), "
            "or network_isolation=False."
        )
    if isolation:
        notes.append("network isolation: nothing is pip-installed; the image's own evaluate and scikit-learn are used")
    if encrypt and nodes == 1:
        notes.append("encrypt_inter_node has no effect with one node")
    return subnets, groups, isolation, encrypt, notes


def _channels(job: Job, root: str) -> dict[str, str]:
    if job.dataset.is_remote and job.label_map is None:
        raise ConfigError("from_s3 data is not read before launch, so its classes must be named. "
                          "Fix: .map_labels({raw value: name, ...}) or .map_labels(LabelMap.names([...])).")
    if job.dataset.is_remote:
        channels = {k: v for k, v in job.dataset.source.kwargs}
    else:
        how = "read from the Hub on this machine and " if job.dataset.source.kind == "hub" else ""
        channels = {"train/test": f"{root}/data/<content hash>/ ({how}uploaded at fit, once per content)"}
    source = model_source(job.model_id)
    if source == "s3":
        channels["model"] = job.model_id
    elif source == "folder":
        channels["model"] = f"{root}/models/<content hash>/ (the folder {job.model_id}, uploaded at fit, once per content)"
    return channels


def s3_prefix(value: Any) -> str:
    """The S3 key prefix sagefinetune writes under (default ``sagefinetune``), checked."""
    prefix = DEFAULT_PREFIX if value is None else value
    if not isinstance(prefix, str) or not prefix.strip("/") or not re.fullmatch(r"[A-Za-z0-9!_.*()/-]+", prefix):
        raise ConfigError(f"prefix={value!r} must be an S3 key prefix of letters, digits and !_.*()/-. "
                          "Fix: prefix='sagefinetune'.")
    return prefix.strip("/")


def _volume(volume: Any) -> int:
    if isinstance(volume, bool) or not isinstance(volume, int) or not 1 <= volume <= 16384:
        raise ConfigError(f"volume_size={volume!r} must be whole GB in 1..16384. Fix: .fit(..., volume_size=50).")
    return volume


def _kms(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{name}={value!r} must be a KMS key id, ARN or alias. Fix: {name}='alias/my-key'.")
    return value


def _cost(inst: Any, nodes: int, spot: bool, max_run: int, price_per_hour: Any) -> CostEstimate:
    if price_per_hour is None:
        price, source = inst.price_per_hour, PRICE_SOURCE
    else:
        price = positive_number("price_per_hour", price_per_hour, "price_per_hour=3.825 (USD per instance-hour)")
        source = "price_per_hour given"
    return CostEstimate(price, nodes, price * nodes, price * nodes * max_run / 3600,
                        price * nodes * SPOT_FACTOR if spot else None, source)
