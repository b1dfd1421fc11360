"""measure_speed: this machine's training speed for a Job, probed through the local backend and cached.

The probe trains the Job's own model on a sample of its own rows for two short epochs; :mod:`sagefinetune.cost.local_speed`
reads its timestamped lines into a :class:`~sagefinetune.LocalSpeed` and keeps the cache.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.local import LocalBackend
from sagefinetune.cost.length import typed_hyperparameters
from sagefinetune.cost.local_speed import (
    PROBE_STEPS,
    PROBE_TEST_ROWS,
    LocalSpeed,
    cache_path,
    cached_speed,
    speed_settings,
    store,
    timings,
)

if TYPE_CHECKING:
    from sagefinetune.job import Job

__all__ = ["measure_speed"]


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
    store(speed)
    return speed


def _probe_job(job: Job, nodes: int) -> Job:
    hp = typed_hyperparameters(job.hyperparameters_)
    rows = PROBE_STEPS * hp["batch_size"] * hp["gradient_accumulation_steps"] * nodes
    seed = dict(job.dataset.sample_spec).get("seed", 42)
    dataset = job.dataset.sample(train=rows, test=PROBE_TEST_ROWS, seed=seed)
    return (job.__class__(dataset, job.label_map, job.model_id, job.model_config, job.hyperparameters_,
                           job.reinitialize)
            .hyperparameters(max_steps=2 * PROBE_STEPS, save_steps=2 * PROBE_STEPS, eval_each_epoch=False))


def _probe(job: Job, nodes: int, settings: dict[str, Any], python: str) -> LocalSpeed:
    lines: list[tuple[float, str]] = []
    backend = LocalBackend(python=python, on_line=lambda t, line: lines.append((t, line)))
    probe = _probe_job(job, nodes)
    with tempfile.TemporaryDirectory(prefix="sagefinetune-probe-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes on the probe's own sample (test=128) are not the user's business
        run = backend.fit(probe, probe.plan(nodes=nodes), run_dir=Path(tmp) / "probe", progress=False)
    total = run.training_seconds or (lines[-1][0] if lines else 0.0)
    return timings(lines, total, run.metrics, settings)
