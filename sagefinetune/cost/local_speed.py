"""This machine's own training speed, as a probe measured it (see :func:`sagefinetune.speed.measure_speed`), cached per
settings.

The probe trains the Job's own model on a sample of its own rows, with its batch size, token length, precision and
number of processes, for two short epochs (``max_steps``), saves one checkpoint and evaluates a small test split.
The times at which the entry point prints its lines give:

- ``step_s``: seconds per optimizer step (the whole second epoch, so every batch length counts once);
- ``startup_s``: from launch to the first step (imports, model load, tokenizing);
- ``save_s``: one checkpoint; ``eval_row_s``: evaluation per row; ``final_s``: saving the model and reports.

A local run of ``steps`` steps is then ``startup + steps x step_s + saves x save_s + eval rows x eval_row_s + final``.
The result is cached in ``$SFT_CACHE_DIR/speeds.json`` (default ``~/.cache/sagefinetune``), keyed by everything it
depends on (model, settings, processes, the data source, this machine), so it is measured once.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.cost.length import typed_hyperparameters
from sagefinetune.entrypoint import contract
from sagefinetune.errors import TrainingError

if TYPE_CHECKING:
    from sagefinetune.job import Job

__all__ = ["LocalSpeed", "cached_speed", "cache_path", "speed_settings", "speed_key", "store", "timings", "PROBE_STEPS",
           "PROBE_TEST_ROWS"]

CACHE_ENV = "SFT_CACHE_DIR"
PROBE_STEPS = 8  # steps per probe epoch; the probe runs two epochs
PROBE_TEST_ROWS = 128
SPEED_HYPERPARAMETERS = ("batch_size", "eval_batch_size", "max_length", "pad_to_max_length", "group_by_length",
                         "precision", "gradient_accumulation_steps")


@dataclass(frozen=True)
class LocalSpeed:
    """How fast this machine runs one Job's settings (see the module docstring)."""

    key: str
    settings: Mapping[str, Any]
    startup_s: float
    step_s: float
    save_s: float
    eval_row_s: float
    final_s: float
    probe_steps: int
    measured_at: str
    probe_seconds: float = 0.0
    cached: bool = field(default=False, compare=False)

    def seconds(self, *, steps: int, saves: int, eval_rows: int) -> float:
        """Predicted run time of the entry point for ``steps`` optimizer steps."""
        return self.startup_s + steps * self.step_s + saves * self.save_s + eval_rows * self.eval_row_s + self.final_s

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "cached"}
        out["settings"] = dict(self.settings)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], cached: bool = False) -> LocalSpeed:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "cached"}
        values["settings"] = MappingProxyType(dict(values["settings"]))
        return cls(**values, cached=cached)


def cache_path() -> Path:
    """``$SFT_CACHE_DIR/speeds.json``, else ``$XDG_CACHE_HOME/sagefinetune/speeds.json`` (``~/.cache``)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache",
                                                      "sagefinetune")
    return Path(root) / "speeds.json"


def speed_settings(job: Job, processes: int, python: str = sys.executable) -> dict[str, Any]:
    """Everything a measured speed depends on: model, settings, processes, the data source, this machine."""
    from sagefinetune import __version__

    hp = typed_hyperparameters(job.hyperparameters_)  # max_length "auto": the data below decides it
    ds = job.dataset
    return {
        "model": job.model_id, "model_config": dict(job.model_config),
        **{k: hp[k] for k in SPEED_HYPERPARAMETERS},
        "processes": processes, "threads": os.environ.get("OMP_NUM_THREADS", ""), "cpus": os.cpu_count(),
        "data": f"{ds.source.describe()} text={ds.text} pair={ds.text_pair} filters={len(ds.filters)}",
        "machine": platform.node(), "python": python, "sagefinetune": __version__,
    }


def speed_key(settings: Mapping[str, Any]) -> str:
    """The cache key of a speed: a hash of everything it depends on."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_cache() -> dict[str, Any]:
    path = cache_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return dict(data.get("speeds", {})) if isinstance(data, dict) else {}


def store(speed: LocalSpeed) -> None:
    """Add ``speed`` to the cache file (atomically replaced)."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    speeds = _read_cache()
    speeds[speed.key] = speed.to_dict()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": 1, "speeds": speeds}, indent=1))
    os.replace(tmp, path)


def cached_speed(job: Job, nodes: int = 1, *, python: str = sys.executable) -> LocalSpeed | None:
    """The cached speed of ``job`` with ``nodes`` local processes, or None (reads the cache; never probes)."""
    settings = speed_settings(job, nodes, python)
    found = _read_cache().get(speed_key(settings))
    return LocalSpeed.from_dict(found, cached=True) if found else None


def timings(lines: list[tuple[float, str]], total: float, metrics: Mapping[str, float],
             settings: dict[str, Any]) -> LocalSpeed:
    """Read the probe's timestamped lines into a LocalSpeed."""
    steps: dict[int, float] = {}
    train_end = first_eval = last_eval = None
    for t, line in lines:
        if (m := contract.PROGRESS_LINE.search(line)) is not None:
            steps.setdefault(int(m["step"]), t)
        elif (m := contract.METRIC_LINE.search(line)) is not None:
            if m["name"] == "train_runtime":
                train_end = t
            elif train_end is not None and m["name"].startswith("eval_"):
                first_eval = first_eval if first_eval is not None else t
                last_eval = t
    last = max(steps, default=0)
    half = last // 2
    if half < 1 or train_end is None or first_eval is None or last_eval is None or 1 not in steps:
        raise TrainingError(f"the speed probe printed too little to time ({len(steps)} steps seen). "
                            "Fix: run job.fit() once and read its train.log.")
    step_s = (steps[last] - steps[half]) / (last - half)
    eval_rows = max(1.0, metrics.get("eval_runtime", 0.0) * metrics.get("eval_samples_per_second", 0.0))
    return LocalSpeed(
        key=speed_key(settings), settings=MappingProxyType(settings), startup_s=max(0.0, steps[1] - step_s), step_s=step_s,
        save_s=max(0.0, train_end - steps[last]), eval_row_s=max(0.0, first_eval - train_end) / eval_rows,
        final_s=max(0.0, total - last_eval), probe_steps=last, probe_seconds=total,
        measured_at=time.strftime("%Y-%m-%d %H:%M", time.localtime()),
    )
