"""SageMaker instance types: GPUs, GPU generation and on-demand training price, in one dated table.

Prices: us-east-1 on-demand SageMaker training, USD per instance-hour, as listed on the AWS SageMaker pricing page,
read 2026-11 (the ml.p3 rows match the bills in the team's benchmark runs). Other regions differ by up to ~30%;
pass ``price_per_hour=`` to ``plan``/``fit`` to use your own. Spot prices move with demand: the spot figure is an
estimate (on-demand x SPOT_FACTOR), not a quote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sagefinetune.errors import ConfigError, did_you_mean

PRICES_AS_OF = "2026-11"
PRICE_SOURCE = "AWS SageMaker pricing page, us-east-1 on-demand training, read " + PRICES_AS_OF
SPOT_FACTOR = 0.35  # managed spot typically saves 60-70%; an estimate, not a quote


@dataclass(frozen=True)
class Instance:
    name: str
    gpus: int
    gpu: str  # "V100", "T4", "A10G", "L4", "A100", "H100", "" for CPU
    compute_capability: float  # 7.0 V100, 7.5 T4, 8.0 A100, 8.6 A10G, 8.9 L4, 9.0 H100; 0 for CPU
    price_per_hour: float

    @property
    def bf16(self) -> bool:
        return self.compute_capability >= 8.0


def _i(name: str, gpus: int, gpu: str, cc: float, price: float) -> tuple[str, Instance]:
    return name, Instance(name, gpus, gpu, cc, price)


INSTANCES: Mapping[str, Instance] = MappingProxyType(dict([
    _i("ml.p3.2xlarge", 1, "V100", 7.0, 3.825),
    _i("ml.p3.8xlarge", 4, "V100", 7.0, 14.688),
    _i("ml.p3.16xlarge", 8, "V100", 7.0, 28.152),
    _i("ml.p3dn.24xlarge", 8, "V100", 7.0, 35.894),
    _i("ml.g4dn.xlarge", 1, "T4", 7.5, 0.736),
    _i("ml.g4dn.2xlarge", 1, "T4", 7.5, 0.94),
    _i("ml.g4dn.12xlarge", 4, "T4", 7.5, 4.89),
    _i("ml.g5.xlarge", 1, "A10G", 8.6, 1.408),
    _i("ml.g5.2xlarge", 1, "A10G", 8.6, 1.515),
    _i("ml.g5.12xlarge", 4, "A10G", 8.6, 7.09),
    _i("ml.g5.48xlarge", 8, "A10G", 8.6, 20.36),
    _i("ml.g6.xlarge", 1, "L4", 8.9, 1.1155),
    _i("ml.g6.12xlarge", 4, "L4", 8.9, 5.299),
    _i("ml.g6.48xlarge", 8, "L4", 8.9, 16.1),
    _i("ml.p4d.24xlarge", 8, "A100", 8.0, 37.688),
    _i("ml.p5.48xlarge", 8, "H100", 9.0, 113.068),
    _i("ml.m5.xlarge", 0, "", 0.0, 0.23),
    _i("ml.m5.2xlarge", 0, "", 0.0, 0.461),
    _i("ml.c5.2xlarge", 0, "", 0.0, 0.408),
]))


def lookup(name: str) -> Instance:
    """The catalog entry for an instance type; a ConfigError with a did-you-mean when unknown."""
    if not isinstance(name, str) or name not in INSTANCES:
        hint = did_you_mean(name, list(INSTANCES)) if isinstance(name, str) else ""
        known = ", ".join(n for n, i in INSTANCES.items() if i.gpus)
        raise ConfigError(f"unknown instance type {name!r}{hint or '.'} GPU instances known here: {known}. "
                          "Fix: use one of those, or instance='local'.")
    return INSTANCES[name]
