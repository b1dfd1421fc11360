"""This machine's own training speed: a probe of a few steps through the real entry point, cached per settings.

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
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.entrypoint import contract
from sagefinetune.errors import TrainingError

if TYPE_CHECKING:
    from sagefinetune.job import Job

__all__ = ["LocalSpeed", "measure_speed", "cached_speed", "cache_path", "speed_settings", "PROBE_STEPS"]

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

    hp = contract.parse_hyperparameters({k: contract.render_hyperparameter(v) for k, v in job.hyperparameters_.items()})
    ds = job.dataset
    return {
        "model": job.model_id, "model_config": dict(job.model_config),
        **{k: hp[k] for k in SPEED_HYPERPARAMETERS},
        "processes": processes, "threads": os.environ.get("OMP_NUM_THREADS", ""), "cpus": os.cpu_count(),
        "data": f"{ds.source.describe()} text={ds.text} pair={ds.text_pair} filters={len(ds.filters)}",
        "machine": platform.node(), "python": python, "sagefinetune": __version__,
    }


def _key(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_cache() -> dict[str, Any]:
    path = cache_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return dict(data.get("speeds", {})) if isinstance(data, dict) else {}


def _write_cache(speed: LocalSpeed) -> None:
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
    found = _read_cache().get(_key(settings))
    return LocalSpeed.from_dict(found, cached=True) if found else None


def measure_speed(job: Job, nodes: int = 1, *, refresh: bool = False, progress: bool = True,
                  python: str = sys.executable) -> LocalSpeed:
    """This machine's speed for ``job`` run locally with ``nodes`` processes: cached, else a probe (10-60 s).

    Example:
        >>> speed = sft.measure_speed(job)  # doctest: +SKIP
        >>> job.plan(local_speed=speed).estimate.seconds  # doctest: +SKIP
        41.2
    """
    if not refresh:
        found = cached_speed(job, nodes, python=python)
        if found is not None:
            return found
    settings = speed_settings(job, nodes, python)
    if progress:
        print(f"[sagefinetune] measuring this machine's speed for {job.model_id} with {nodes} process(es) "
              f"(a probe of {2 * PROBE_STEPS} steps; cached in {cache_path()})", file=sys.stderr, flush=True)
    speed = _probe(job, nodes, settings, python)
    _write_cache(speed)
    return speed


def _probe_job(job: Job, nodes: int) -> Job:
    hp = contract.parse_hyperparameters({k: contract.render_hyperparameter(v) for k, v in job.hyperparameters_.items()})
    rows = PROBE_STEPS * hp["batch_size"] * hp["gradient_accumulation_steps"] * nodes
    seed = dict(job.dataset.sample_spec).get("seed", 42)
    dataset = job.dataset.sample(train=rows, test=PROBE_TEST_ROWS, seed=seed)
    return (job.__class__(dataset, job.label_map, job.model_id, job.model_config, job.hyperparameters_, job.reinitialize)
            .hyperparameters(max_steps=2 * PROBE_STEPS, save_steps=2 * PROBE_STEPS, eval_each_epoch=False))


def _probe(job: Job, nodes: int, settings: dict[str, Any], python: str) -> LocalSpeed:
    from sagefinetune.backends.local import LocalBackend

    lines: list[tuple[float, str]] = []
    backend = LocalBackend(python=python, on_line=lambda t, line: lines.append((t, line)))
    probe = _probe_job(job, nodes)
    with tempfile.TemporaryDirectory(prefix="sagefinetune-probe-") as tmp:
        run = backend.fit(probe, probe.plan(nodes=nodes), run_dir=Path(tmp) / "probe", progress=False)
    total = run.training_seconds or (lines[-1][0] if lines else 0.0)
    return _timings(lines, total, run.metrics, settings)


def _timings(lines: list[tuple[float, str]], total: float, metrics: Mapping[str, float],
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
        key=_key(settings), settings=MappingProxyType(settings), startup_s=max(0.0, steps[1] - step_s), step_s=step_s,
        save_s=max(0.0, train_end - steps[last]), eval_row_s=max(0.0, first_eval - train_end) / eval_rows,
        final_s=max(0.0, total - last_eval), probe_steps=last, probe_seconds=total,
        measured_at=time.strftime("%Y-%m-%d %H:%M", time.localtime()),
    )
