"""What a SageMaker endpoint (or a batch transform's model) will be: checked options, image, model, environment,
tags, cost.

Pure: no I/O, no SDK import. Every option is checked here, so a wrong value fails before anything is uploaded or
created; the backend (:mod:`sagefinetune.backends.sagemaker.endpoints`) renders the requests from a
:class:`DeploySpec` and acts. A batch transform's input and output: :mod:`sagefinetune.plans.transform`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sagefinetune.core.checks import boolean, bucket_name, positive_number, string_mapping
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ConfigError, did_you_mean
from sagefinetune.facts import images
from sagefinetune.facts.hosting import (
    PRICE_SOURCE,
    SERVERLESS_MEMORY_MB,
    HostingInstance,
    lookup_hosting,
    serverless_line,
)
from sagefinetune.plans.expiry import Expiry, plan_expiry
from sagefinetune.plans.sagemaker import check_no_secrets, s3_prefix
from sagefinetune.plans.scaling import Autoscale, plan_autoscale

TAG = "sagefinetune:"  # every tag key this library writes starts with it; Endpoint.list() finds endpoints by it
KIND_TAG, MODEL_TAG, RUN_TAG, CREATED_TAG = (f"{TAG}kind", f"{TAG}model", f"{TAG}run", f"{TAG}created-at")
DEFAULT_INSTANCE = "ml.m5.xlarge"
DEFAULT_MEMORY_MB = 3072  # the MiniLM-sized models this library trains load in well under 2 GB; the container needs room
DEFAULT_CONCURRENCY = 5
HANDLER_DIR = "/opt/ml/model/code"
OPTIONS = ("instance", "serverless", "memory_mb", "max_concurrency", "instance_count", "name", "role", "region",
           "boto_session", "tags", "wait", "timeout", "bucket", "prefix", "image", "environment", "price_per_hour",
           "progress", "poll_seconds", "precision", "runtime", "ttl", "scheduler_role", "autoscale", "target_invocations")
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_TAG_TEXT = re.compile(r"[\w.:/=+\-@ ]*")


@dataclass(frozen=True)
class ModelRef:
    """Where a served model comes from.

    Attributes:
        kind: ``"artifact"`` (an ``s3://.../model.tar.gz``), ``"folder"`` (packed and uploaded at deploy) or ``"hub"``.
        location: the S3 URI, the folder's path or the Hub id.
        image: the training/serving version pair whose inference image serves it.
        has_handler: the model carries ``code/inference.py`` (sagefinetune's handler); False: the Hugging Face
            toolkit's default handler serves it with ``HF_TASK=text-classification``; None: not known (an archive
            in S3), and the toolkit uses whichever the archive has.
        run: the training run it came from, if any.
    """

    kind: str
    location: str
    image: images.ImagePair
    has_handler: bool | None
    run: str | None = None

    @property
    def label(self) -> str:
        """The model as a tag value: the run's name, else the S3 URI, the Hub id or the folder's name."""
        if self.run:
            return self.run
        return self.location.rstrip("/").rsplit("/", 1)[-1] if self.kind == "folder" else self.location


@dataclass(frozen=True)
class DeploySpec:
    """A SageMaker endpoint (or a transform job's model) before anything is created."""

    name: str
    kind: str  # "realtime", "serverless" or "batch"
    region: str
    image_uri: str
    model: ModelRef
    environment: Mapping[str, str]
    tags: Mapping[str, str]
    role: str | None
    instance: str | None
    instance_count: int = 1
    memory_mb: int | None = None
    max_concurrency: int | None = None
    hourly_cost: float | None = None
    bucket: str | None = None
    prefix: str = "sagefinetune"
    notes: tuple[str, ...] = field(default=())
    expiry: Expiry | None = None  # ttl=: EventBridge Scheduler deletes the endpoint then
    autoscale: Autoscale | None = None  # autoscale=(min, max): Application Auto Scaling

    @property
    def cost_line(self) -> str:
        if self.kind == "serverless":
            assert self.memory_mb is not None
            return serverless_line(self.memory_mb)
        assert self.hourly_cost is not None
        return (f"${self.hourly_cost:.3f}/h x {self.instance_count} instance(s) = "
                f"${self.hourly_cost * self.instance_count:.3f}/h while it exists [{PRICE_SOURCE}]")

    def variant(self) -> dict[str, Any]:
        """The endpoint config's one production variant, as the CreateEndpointConfig request has it."""
        variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": self.name}
        if self.kind == "serverless":
            variant["ServerlessConfig"] = {"MemorySizeInMB": self.memory_mb, "MaxConcurrency": self.max_concurrency}
        else:
            variant.update(InstanceType=self.instance, InitialInstanceCount=self.instance_count, InitialVariantWeight=1.0)
        return variant

    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags.items()]

    def core_tags(self) -> list[dict[str, str]]:
        """The tags as sagemaker-core takes them (dicts: its resources module has two ``Tag`` classes)."""
        return [{"key": k, "value": v} for k, v in self.tags.items()]

    def lines(self) -> list[str]:
        where = (f"serverless {self.memory_mb} MB, max concurrency {self.max_concurrency}" if self.kind == "serverless"
                 else f"{self.instance_count} x {self.instance}")
        lines = [f"{self.kind} endpoint {self.name} in {self.region}: {where}", f"  image    {self.image_uri}",
                 f"  model    {self.model.kind} {self.model.location}",
                 "  env      " + ", ".join(f"{k}={v}" for k, v in self.environment.items()),
                 "  tags     " + ", ".join(f"{k}={v}" for k, v in self.tags.items()), f"  cost     {self.cost_line}"]
        lines += [self.autoscale.line(self.hourly_cost)] if self.autoscale else []
        lines += [self.expiry.line(self.hourly_cost, self.instance_count)] if self.expiry else []
        return lines + [f"  note     {n}" for n in self.notes]

    def __str__(self) -> str:
        return redact("\n".join(self.lines()))


def pair_for_training_image(uri: str | None) -> images.ImagePair:
    """The version pair whose training image trained a job (the newest pair for any other image)."""
    for pair in images.IMAGE_PAIRS:
        if uri and f"transformers{pair.transformers}-" in uri:
            return pair
    return images.IMAGE_PAIRS[0]


# ---- checks: each names the value found and the fix --------------------------------------------------------------
def check_options(options: Mapping[str, Any], known: tuple[str, ...] = OPTIONS, where: str = "deploy") -> None:
    for name in sorted(set(options) - set(known)):
        raise ConfigError(f"unknown option {name!r} of {where}(){did_you_mean(name, known) or '.'} "
                          f"Fix: one of {', '.join(known)}.")


def check_name(name: Any, what: str = "endpoint") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"name={name!r} is not a SageMaker {what} name: 1-63 letters, digits and hyphens, starting "
                          "and ending with a letter or digit. Fix: name='reviews-minilm-1'.")
    return name


def default_name(base: str, suffix: str, now: datetime | None = None) -> str:
    """``<base>-<suffix>-<UTC time>``, cut to SageMaker's 63 characters."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9-]", "-", base)).strip("-") or "sft"
    return f"{slug[:63 - len(suffix) - len(stamp) - 2].rstrip('-')}-{suffix}-{stamp}"


def check_role(role: Any) -> str | None:
    if role is not None and (not isinstance(role, str) or not _ROLE.fullmatch(role)):
        raise ConfigError(f"role={role!r} is not an IAM role ARN. Fix: role='arn:aws:iam::<account>:role/<name>'.")
    return role


def check_region(region: Any) -> str:
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ConfigError(f"region={region!r} is not an AWS region name. Fix: region='us-east-1', or set "
                          "AWS_DEFAULT_REGION.")
    return region


def check_tags(tags: Any) -> dict[str, str]:
    """User tags: strings SageMaker accepts, none reserved (``aws:``, ``sagefinetune:``), none that look secret."""
    found = string_mapping("tags", tags, "tags={'team': 'nlp'}")
    for key, value in found.items():
        if key.lower().startswith(("aws:", TAG)):
            raise ConfigError(f"tag {key!r} uses a reserved prefix ('aws:' belongs to AWS, '{TAG}' to this library's "
                              "own tags, which Endpoint.list() trusts). Fix: another key, e.g. 'team'.")
        if len(key) > 128 or len(value) > 256 or not _TAG_TEXT.fullmatch(key) or not _TAG_TEXT.fullmatch(value):
            raise ConfigError(f"tag {key!r}={value!r} is not a valid SageMaker tag (key 1-128, value 0-256 characters "
                              "of letters, digits, spaces and _.:/=+-@). Fix: shorten it or drop the other characters.")
    check_no_secrets(found, "tag")
    return found


def tag_value(text: str) -> str:
    """Any text as a valid tag value (characters SageMaker refuses become '_')."""
    return re.sub(r"[^\w.:/=+\-@ ]", "_", text)[:256]


def our_tags(kind: str, model: ModelRef, user: Mapping[str, str], now: datetime | None = None) -> dict[str, str]:
    created = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tags = {**user, KIND_TAG: kind, MODEL_TAG: tag_value(model.label), CREATED_TAG: created}
    if model.run:
        tags[RUN_TAG] = tag_value(model.run)
    return tags


def whole_number(name: str, value: Any, low: int, high: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name}={value!r} must be a whole number in {low}..{high}. Fix: {fix}.")
    return value


def target(options: Mapping[str, Any]) -> tuple[str, HostingInstance | None, int | None, int | None, int]:
    """kind, hosting instance, serverless memory and concurrency, instance count, from the deploy options."""
    serverless = boolean("serverless", options.get("serverless", False), "serverless=True")
    instance = options.get("instance")
    count = whole_number("instance_count", options.get("instance_count", 1), 1, 100, "instance_count=1")
    memory, concurrency = options.get("memory_mb"), options.get("max_concurrency")
    if serverless:
        if instance not in (None, "local"):
            raise ConfigError(f"serverless=True runs on SageMaker's own CPU capacity; got instance={instance!r} too. "
                              "Fix: drop instance (serverless), or drop serverless=True (a real-time endpoint).")
        if "instance_count" in options:
            raise ConfigError("instance_count applies to real-time endpoints; serverless ones scale by max_concurrency. "
                              "Fix: drop instance_count.")
        memory = DEFAULT_MEMORY_MB if memory is None else memory
        if isinstance(memory, bool) or memory not in SERVERLESS_MEMORY_MB:
            raise ConfigError(f"memory_mb={memory!r} is not a serverless memory size; SageMaker accepts "
                              f"{', '.join(map(str, SERVERLESS_MEMORY_MB))}. Fix: memory_mb=3072.")
        concurrency = whole_number("max_concurrency", DEFAULT_CONCURRENCY if concurrency is None else concurrency,
                                   1, 200, "max_concurrency=5 (SageMaker allows 1..200)")
        return "serverless", None, memory, concurrency, 1
    for name, value in (("memory_mb", memory), ("max_concurrency", concurrency)):
        if value is not None:
            raise ConfigError(f"{name}={value!r} applies to serverless endpoints only. "
                              f"Fix: add serverless=True, or drop {name}.")
    return "realtime", lookup_hosting(DEFAULT_INSTANCE if instance is None else instance), None, None, count


def environment(model: ModelRef, kind: str, region: str, extra: Any, precision: Any = None,
                runtime: Any = None) -> dict[str, str]:
    """The Hugging Face inference container's environment: handler, task, Hub id, the handler's precision and runtime
    (when ``precision=`` / ``runtime=`` are given; the handler's defaults are ``auto``: what ``serving.json`` chose);
    never a secret."""
    user = string_mapping("environment", extra, "environment={'MY_FLAG': '1'}")
    check_no_secrets(user, "environment variable")
    if precision is not None:
        user = {**user, "SFT_PRECISION": precision}
    if runtime is not None:
        from sagefinetune.entrypoint.serving_choice import RUNTIMES

        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}. Fix: runtime='auto' "
                              "(what the check at deploy chose), 'pytorch' or 'onnx' (the int8 export).")
        user = {**user, "SFT_RUNTIME": runtime}
    if "SFT_PRECISION" in user:
        from sagefinetune.core.checks import check_precision

        check_precision(user["SFT_PRECISION"])
    env = {"HF_TASK": "text-classification", "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": region}
    if model.kind != "hub":  # the toolkit imports code/inference.py from the model folder when there is one
        env.update(SAGEMAKER_PROGRAM="inference.py", SAGEMAKER_SUBMIT_DIRECTORY=HANDLER_DIR)
    if model.kind == "hub":
        env["HF_MODEL_ID"] = model.location
    if kind == "serverless":  # one model copy in a few GB of memory, not one per vCPU
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = "1"
    return {**env, **user}


def plan_deploy(model: ModelRef, *, region: str, kind_default: str | None = None, now: datetime | None = None,
                **options: Any) -> DeploySpec:
    """Check every option and describe the endpoint (``kind_default="batch"``: a transform job's model)."""
    check_options(options)
    kind, host, memory, concurrency, count = target(options)
    if kind_default:
        kind = kind_default
    autoscale, count = plan_autoscale(options, kind, count)
    region = check_region(region)
    name = check_name(options["name"]) if options.get("name") is not None else default_name(
        model.label, "bt" if kind == "batch" else "ep", now)
    image = options.get("image")
    if image is not None and (not isinstance(image, str) or "/" not in image):
        raise ConfigError(f"image={image!r} is not a container image URI. Fix: image='<account>.dkr.ecr.<region>."
                          "amazonaws.com/<repository>:<tag>', or drop image to use the Hugging Face inference image.")
    processor = host.processor if host else "cpu"
    price = options.get("price_per_hour")
    hourly = (positive_number("price_per_hour", price, "price_per_hour=0.23") if price is not None
              else host.price_per_hour if host else None)
    for flag in ("wait", "progress"):
        boolean(flag, options.get(flag, True), f"{flag}=False")
    if options.get("timeout") is not None:
        positive_number("timeout", options["timeout"], "timeout=1800 (seconds)")
    notes = []
    if model.has_handler is False or model.kind == "hub":
        notes.append("no code/inference.py: the toolkit's default text-classification handler serves the model")
    elif model.has_handler is None:
        notes.append("an archive without code/inference.py is served by the toolkit's default text-classification "
                     "handler")
    return DeploySpec(
        name=name, kind=kind, region=region, image_uri=image or images.uri(model.image, region, "inference", processor),
        model=model, environment=MappingProxyType(environment(model, kind, region, options.get("environment"),
                                                              options.get("precision"), options.get("runtime"))),
        tags=MappingProxyType(our_tags(kind, model, check_tags(options.get("tags")), now)),
        role=check_role(options.get("role")), instance=host.name if host else None, instance_count=count,
        memory_mb=memory, max_concurrency=concurrency, hourly_cost=hourly, bucket=bucket_name(options.get("bucket")),
        prefix=s3_prefix(options.get("prefix")), notes=tuple(notes), expiry=plan_expiry(options), autoscale=autoscale,
    )


def model_ref(model: Any) -> ModelRef:
    """An ``s3://.../model.tar.gz``, a local model folder, or a Hub id, checked (no network)."""
    from sagefinetune.facts.models import check_name, model_source

    pair = images.IMAGE_PAIRS[0]
    if isinstance(model, Path):
        model = str(model)
    if isinstance(model, str) and model.startswith("s3://"):
        if not model.endswith(".tar.gz") or len(model.split("/")) < 4:
            raise ConfigError(f"from_model needs a model archive, s3://<bucket>/<key>.tar.gz; got {model!r}. Fix: a "
                              "training job's artifact (TrainingRun.model_artifact), or the local model folder.")
        return ModelRef("artifact", model, pair, None)
    name = check_name(model)
    if model_source(name) == "folder":
        return ModelRef("folder", name, pair, (Path(name) / "code" / "inference.py").is_file() or handler_file().is_file())
    return ModelRef("hub", name, pair, False)


def local_folder(ref: ModelRef) -> Path:
    from sagefinetune.facts.models import local_path

    found = ref.location if ref.kind == "folder" else local_path(ref.location) if ref.kind == "hub" else None
    if found is None:
        raise ConfigError(f"instance='local' serves a model folder on this machine; {ref.location!r} is not one. Fix: "
                          "download (and unpack) it, then Endpoint.from_model('<folder>', instance='local').")
    return Path(found)


def handler_file() -> Path:
    """sagefinetune's serving handler (``entrypoint/inference.py``), which a model folder gets as ``code/inference.py``."""
    from sagefinetune import entrypoint

    return Path(entrypoint.__file__).resolve().parent / "inference.py"
