"""A model package group as a :class:`~sagefinetune.registry.Registry` reads it: boto3 only (ListModelPackages,
DescribeModelPackage, UpdateModelPackage); :meth:`sagefinetune.Registry.deploy` serves a version.

A pipeline's Register step writes the metrics into the package twice: as ``CustomerMetadataProperties``
(``sagefinetune:eval_f1`` ...: read here without touching S3) and as the model quality statistics (the step's
``evaluation.json``, which the console shows). A package made by other tools has only the second: it is read instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sagefinetune.backends.records import ModelVersion
from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.backends.sagemaker.training import SageMakerBackend
from sagefinetune.errors import AWSError

METRIC_PREFIX = "sagefinetune:"  # CustomerMetadataProperties keys: sagefinetune:eval_f1, sagefinetune:labels, ...
LABELS_KEY = "sagefinetune:labels"
SOURCE_KEYS = ("sagefinetune:pipeline", "sagefinetune:data", "sagefinetune:training-image")


class SageMakerStore:
    """The versions of a model package group in one region."""

    def __init__(self, group: str, *, boto_session: Any = None, region: str | None = None) -> None:
        self.group = group
        self.aws = SageMakerBackend(boto_session, region=region)
        self.region = self.aws.region
        self.boto_session = boto_session

    def versions(self) -> list[ModelVersion]:
        self.aws.check_credentials()
        client = self.aws.client("sagemaker")
        summaries: list[dict[str, Any]] = []
        with aws_errors("ListModelPackages"):
            for page in client.get_paginator("list_model_packages").paginate(ModelPackageGroupName=self.group):
                summaries.extend(page.get("ModelPackageSummaryList", []))
        if not summaries:
            self._check_group(client)
        found = []
        for summary in summaries:
            with aws_errors("DescribeModelPackage"):
                described = client.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            found.append(self.version_of(described))
        return sorted(found, key=lambda v: v.version)

    def _check_group(self, client: Any) -> None:
        try:
            client.describe_model_package_group(ModelPackageGroupName=self.group)
        except Exception as exc:  # botocore's ClientError: the group does not exist (or cannot be read)
            raise AWSError(f"no model package group {self.group!r} in {self.region}. Fix: check the name and the region "
                           "(a pipeline's upsert() creates its group).", operation="DescribeModelPackageGroup") from exc

    def version_of(self, d: Mapping[str, Any]) -> ModelVersion:
        """A DescribeModelPackage answer as a ModelVersion."""

        properties = dict(d.get("CustomerMetadataProperties") or {})
        metrics = {k[len(METRIC_PREFIX):]: float(v) for k, v in properties.items()
                   if k.startswith(METRIC_PREFIX + "eval_") and _is_number(v)}
        if not metrics:
            metrics = self._statistics(d)
        container = ((d.get("InferenceSpecification") or {}).get("Containers") or [{}])[0]
        labels = json.loads(properties[LABELS_KEY]) if LABELS_KEY in properties else []
        source = {k[len(METRIC_PREFIX):]: properties[k] for k in SOURCE_KEYS if k in properties}
        created: Any = d.get("CreationTime")
        return ModelVersion(
            group=self.group, version=int(d.get("ModelPackageVersion") or 0), status=d.get("ModelApprovalStatus", ""),
            metrics=MappingProxyType(metrics), labels=tuple(labels), model=container.get("ModelDataUrl", ""),
            inference_image=container.get("Image"), created=created.isoformat() if hasattr(created, "isoformat")
            else str(created or ""), source=MappingProxyType(source), arn=d.get("ModelPackageArn"))

    def _statistics(self, d: Mapping[str, Any]) -> dict[str, float]:
        """The metrics of the model quality statistics file (a pipeline's evaluation.json), when there is one."""
        uri = (((d.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri")
        if not uri or not uri.startswith("s3://"):
            return {}
        bucket, key = uri[len("s3://"):].split("/", 1)
        try:
            body = self.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            report = json.loads(body)
        except Exception:  # an unreadable report is not a reason to hide the version: it lists without metrics
            return {}
        metrics = report.get("metrics", {}) if isinstance(report, dict) else {}
        return {k: float(v) for k, v in metrics.items() if _is_number(v)}

    def set_status(self, version: ModelVersion, status: str, note: str | None) -> ModelVersion:
        client = self.aws.client("sagemaker")
        request: dict[str, Any] = {"ModelPackageArn": version.arn, "ModelApprovalStatus": status}
        if note:
            request["ApprovalDescription"] = note
        with aws_errors("UpdateModelPackage"):
            client.update_model_package(**request)
        with aws_errors("DescribeModelPackage"):
            described = client.describe_model_package(ModelPackageName=version.arn)
        print(f"[sagefinetune] {self.group} v{version.version}: {status}")
        return self.version_of(described)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
