"""``Endpoint.list()``'s table: every endpoint sagefinetune made in a region (found by its tags), with its age, its
cost so far, its expiry and its autoscaling range.

:meth:`sagefinetune.backends.sagemaker.endpoints.ServingBackend.list` calls :func:`list_endpoints`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.sagemaker import autoscaling
from sagefinetune.backends.sagemaker.aws import aws_errors
from sagefinetune.facts.hosting import HOSTING
from sagefinetune.plans.deploy import KIND_TAG, MODEL_TAG, RUN_TAG
from sagefinetune.plans.expiry import EXPIRES_TAG, parse_tag_time

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.backends.sagemaker.endpoints import ServingBackend

__all__ = ["LIST_COLUMNS", "list_endpoints", "list_row"]

LIST_COLUMNS = ["name", "kind", "status", "instance", "instance_count", "memory_mb", "max_concurrency", "created_at",
                "age_hours", "price_per_hour", "cost_so_far", "billing", "expires_at", "autoscale", "model", "run"]


def list_endpoints(backend: ServingBackend) -> pd.DataFrame:
    """Every endpoint in the backend's region that carries sagefinetune's tags, oldest first."""
    import pandas as pd

    backend.aws.check_credentials()
    now = datetime.now(timezone.utc)
    found = []
    with aws_errors("ListEndpoints"):
        pages = list(backend.client("sagemaker").get_paginator("list_endpoints").paginate())
    for summary in (s for page in pages for s in page.get("Endpoints", [])):
        tags = backend.tags(summary["EndpointArn"])
        if KIND_TAG in tags:  # ours: describe it (the summary does not name its config)
            d = backend.describe(summary["EndpointName"])
            if d is not None:
                found.append((d, backend.endpoint_config(d.get("EndpointConfigName")), tags))
    if not found:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in LIST_COLUMNS})
    scaling = autoscaling.ranges(backend.client("application-autoscaling"))  # one call for the whole region
    rows = [list_row(d, config, tags, now, scaling.get(d["EndpointName"])) for d, config, tags in found]
    return pd.DataFrame(rows, columns=LIST_COLUMNS).sort_values("created_at", ignore_index=True)


def list_row(d: Mapping[str, Any], config: Mapping[str, Any], tags: Mapping[str, str], now: datetime,
             scaling: tuple[int, int] | None = None) -> list[Any]:
    """One row of the table: cost so far = hourly price x instances now x age (an estimate)."""
    variant = (config.get("ProductionVariants") or [{}])[0]
    serverless = variant.get("ServerlessConfig") or {}
    created = d["CreationTime"]
    created = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    age = (now - created).total_seconds() / 3600
    current = ((d.get("ProductionVariants") or [{}])[0]).get("CurrentInstanceCount")  # autoscaling moves it
    instance, count = variant.get("InstanceType"), int(current or variant.get("InitialInstanceCount") or 1)
    host = HOSTING.get(instance or "")
    nan = float("nan")
    if serverless:
        price, cost, billing = nan, nan, "per request (GB-seconds of compute); nothing while idle"
    elif host is None:
        price, cost, billing = nan, nan, f"per hour; no price for {instance} in sagefinetune.facts.hosting"
    else:
        price, cost, billing = host.price_per_hour, host.price_per_hour * count * age, "per instance-hour while it exists"
    return [d["EndpointName"], "serverless" if serverless else "realtime", d.get("EndpointStatus"),
            instance, count if not serverless else None, serverless.get("MemorySizeInMB"),
            serverless.get("MaxConcurrency"), created, round(age, 3), price, cost, billing,
            parse_tag_time(tags.get(EXPIRES_TAG)), scaling, tags.get(MODEL_TAG), tags.get(RUN_TAG)]
