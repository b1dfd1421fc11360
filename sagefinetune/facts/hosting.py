"""What serving costs on SageMaker: hosting instances and serverless prices, in one dated table.

Prices: us-east-1 on-demand SageMaker real-time inference, USD per instance-hour, and serverless inference, USD per
GB-second of compute, as listed on the AWS SageMaker pricing page (tabs "Real-Time Inference", "Serverless
Inference" and "Batch Transform"), recorded 2026-11. Batch transform bills the same instance-hour rates as
real-time hosting for these types. Other regions differ by up to ~30%; pass ``price_per_hour=`` to use your own.
Data processed in and out of an endpoint adds $0.016 per GB (not included in the figures here).

Training prices are a separate table: :mod:`sagefinetune.facts.instances`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sagefinetune.errors import ConfigError, did_you_mean

__all__ = ["HostingInstance", "HOSTING", "lookup_hosting", "SERVERLESS_PRICE_PER_GB_SECOND", "SERVERLESS_MEMORY_MB",
           "DATA_PRICE_PER_GB", "PRICES_AS_OF", "PRICE_SOURCE", "serverless_line"]

PRICES_AS_OF = "2026-11"
PRICE_SOURCE = "AWS SageMaker pricing page, us-east-1 on-demand real-time inference, recorded " + PRICES_AS_OF
#: Serverless inference compute: USD per second per GB of configured memory (1 GB = 1024 MB), us-east-1.
SERVERLESS_PRICE_PER_GB_SECOND = 0.00002
#: Data processed in and out of real-time and serverless endpoints, USD per GB, us-east-1.
DATA_PRICE_PER_GB = 0.016
#: The memory sizes SageMaker accepts for a serverless endpoint.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)


@dataclass(frozen=True)
class HostingInstance:
    """An instance type that can host an endpoint or run a batch transform job."""

    name: str
    gpus: int
    gpu: str  # "" for CPU
    price_per_hour: float

    @property
    def processor(self) -> str:
        """``"gpu"`` or ``"cpu"``: which build of the inference container it runs."""
        return "gpu" if self.gpus else "cpu"


def _h(name: str, gpus: int, gpu: str, price: float) -> tuple[str, HostingInstance]:
    return name, HostingInstance(name, gpus, gpu, price)


HOSTING: Mapping[str, HostingInstance] = MappingProxyType(dict([
    _h("ml.t2.medium", 0, "", 0.056),
    _h("ml.m5.large", 0, "", 0.115),
    _h("ml.m5.xlarge", 0, "", 0.23),
    _h("ml.m5.2xlarge", 0, "", 0.461),
    _h("ml.m5.4xlarge", 0, "", 0.922),
    _h("ml.c5.large", 0, "", 0.102),
    _h("ml.c5.xlarge", 0, "", 0.204),
    _h("ml.c5.2xlarge", 0, "", 0.408),
    _h("ml.c5.4xlarge", 0, "", 0.816),
    _h("ml.g4dn.xlarge", 1, "T4", 0.736),
    _h("ml.g4dn.2xlarge", 1, "T4", 0.94),
    _h("ml.g4dn.4xlarge", 1, "T4", 1.505),
    _h("ml.g4dn.12xlarge", 4, "T4", 4.89),
    _h("ml.g5.xlarge", 1, "A10G", 1.408),
    _h("ml.g5.2xlarge", 1, "A10G", 1.515),
    _h("ml.g5.4xlarge", 1, "A10G", 2.03),
    _h("ml.g5.12xlarge", 4, "A10G", 7.09),
    _h("ml.p3.2xlarge", 1, "V100", 3.825),
]))


def lookup_hosting(name: object) -> HostingInstance:
    """The table's entry for a hosting instance type; a ConfigError with a did-you-mean when unknown."""
    if not isinstance(name, str) or name not in HOSTING:
        hint = did_you_mean(name, list(HOSTING)) if isinstance(name, str) else ""
        raise ConfigError(f"unknown hosting instance type {name!r}{hint or '.'} Instances known for endpoints and "
                          f"batch transform: {', '.join(HOSTING)}. Fix: use one of those (ml.m5.xlarge is a good CPU "
                          "default, ml.g4dn.xlarge the cheapest GPU), or serverless=True.")
    return HOSTING[name]


def serverless_line(memory_mb: int) -> str:
    """What a serverless endpoint of this size costs, in words."""
    per_second = SERVERLESS_PRICE_PER_GB_SECOND * memory_mb / 1024
    return (f"${SERVERLESS_PRICE_PER_GB_SECOND:.7f} per GB-second x {memory_mb / 1024:g} GB "
            f"= ${per_second:.7f} per second of request time, plus ${DATA_PRICE_PER_GB}/GB of data in and out; "
            f"billed per request, nothing while idle [us-east-1 on-demand, recorded {PRICES_AS_OF}]")
