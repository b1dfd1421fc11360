"""Grid: one base Job over instances, nodes, data sizes and hyperparameters; predicted time and cost for every cell.

    >>> import sagefinetune as sft
    >>> job = sft.Job.from_dataset(sft.Dataset.example("imdb")).hyperparameters(epochs=1, max_length=128)
    >>> grid = sft.Grid(job).over(instance=["ml.g5.xlarge", "ml.g5.12xlarge"], nodes=[1, 2], train_size=[5000, 20000])
    >>> len(grid.cells())
    8
    >>> table = grid.plan()  # pure: one row per cell and a total row, nothing launched
    >>> list(table["cell"])[-1], bool(table["predicted_cost"].iloc[-1] > 0)
    ('total', True)

``grid.run()`` runs the cells (one after another locally, several at once on SageMaker), records a failed cell and
goes on, and resumes an interrupted grid without running finished cells again; see :class:`GridResult`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ConfigError, did_you_mean
from sagefinetune.grid.runner import job_name_for
from sagefinetune.job import Job
from sagefinetune.plans.hyperparameters import USER_HYPERPARAMETERS

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.cost.local_speed import LocalSpeed
    from sagefinetune.grid.result import GridResult
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["Grid", "Cell"]

BUILTIN_AXES = ("instance", "nodes", "train_size")


@dataclass(frozen=True)
class Cell:
    """One point of the grid: where it runs, on how many rows, with which hyperparameters, and its Job."""

    instance: str
    nodes: int
    train_size: int | None
    hyperparameters: Mapping[str, Any]  # the grid's hyperparameter axes only
    job: Job = field(compare=False, repr=False)

    @property
    def values(self) -> dict[str, Any]:
        return {"instance": self.instance, "nodes": self.nodes, "train_size": self.train_size, **self.hyperparameters}

    @property
    def key(self) -> str:
        """Stable across runs of the same grid: the cell's values and the base Job's settings."""
        base = {"job": repr(self.job), "values": self.values}
        return hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()[:10]

    @property
    def name(self) -> str:
        """A readable folder name: ``local-n2-rows400-lr0.0002-<key>``."""
        short = {"learning_rate": "lr", "batch_size": "bs", "epochs": "ep", "max_length": "len"}
        parts = [self.instance.replace("ml.", ""), f"n{self.nodes}"]
        parts += [f"rows{self.train_size}"] if self.train_size else []
        parts += [f"{short.get(k, k)}{v}" for k, v in self.hyperparameters.items()]
        return re.sub(r"[^A-Za-z0-9.=-]+", "_", "-".join(parts))[:80] + f"-{self.key[:6]}"

    @property
    def backend(self) -> str:
        return "local" if self.instance == "local" else "sagemaker"


def _as_tuple(name: str, values: Any) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = (values,)
    values = tuple(values)
    if not values:
        raise ConfigError(f"over({name}=[]) has no values. Fix: give at least one, e.g. over({name}=[...]).")
    return values


def _check_axis(job: Job, name: str, values: tuple[Any, ...]) -> None:
    if name == "instance":
        from sagefinetune.facts.instances import lookup

        for v in values:
            if v != "local":
                lookup(v)  # a ConfigError with a did-you-mean
        if "local" in values and len(set(values)) > 1:
            raise ConfigError(f"over(instance={list(values)}) mixes 'local' with SageMaker instances; a grid runs either "
                              "here or on SageMaker. Fix: two grids.")
    elif name in ("nodes", "train_size"):
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 1]
        if bad:
            raise ConfigError(f"over({name}=...) needs whole numbers >= 1; got {bad}. Fix: over({name}=[1, 2]).")
        if name == "train_size" and job.dataset.is_remote:
            raise ConfigError("over(train_size=...) samples the rows here, but from_s3 data is read by SageMaker in "
                              "place. Fix: one from_s3 prefix per size (a grid each), or local files.")
    elif name in USER_HYPERPARAMETERS:
        for v in values:
            job.hyperparameters(**{name: v})  # the Job's own checks
    else:
        known = list(BUILTIN_AXES) + list(USER_HYPERPARAMETERS)
        raise ConfigError(f"unknown grid axis {name!r}{did_you_mean(name, known)} Axes: instance, nodes, train_size "
                          f"and any hyperparameter ({', '.join(USER_HYPERPARAMETERS)}).")


@dataclass(frozen=True, eq=False)
class Grid:
    """The cross product of ``instance``, ``nodes``, ``train_size`` and hyperparameters, from one base Job.

    Immutable: :meth:`over` returns a new Grid, so one base grid can branch.
    """

    job: Job
    axes: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.job, Job):
            raise ConfigError(f"Grid needs a sagefinetune.Job; got {type(self.job).__name__}. Fix: sft.Grid(job).")

    def over(self, **axes: Any) -> Grid:
        """Add or replace axes: ``instance``, ``nodes``, ``train_size`` (rows of the train split) or a hyperparameter.

        Example:
            >>> Grid(Job.from_dataset(Dataset.example("imdb"))).over(nodes=[1, 2], learning_rate=[5e-5, 1e-4]).axes["nodes"]
            (1, 2)
        """
        merged = dict(self.axes)
        for name, values in axes.items():
            values = _as_tuple(name, values)
            _check_axis(self.job, name, values)
            merged[name] = values
        return dataclasses.replace(self, axes=MappingProxyType(merged))

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order (instances, then nodes, then train sizes, then hyperparameters)."""
        names = [n for n in BUILTIN_AXES if n in self.axes] + [n for n in self.axes if n not in BUILTIN_AXES]
        out = []
        for combo in product(*(self.axes[n] for n in names)):
            values = dict(zip(names, combo))
            hp = {k: v for k, v in values.items() if k not in BUILTIN_AXES}
            job = self.job.hyperparameters(**hp) if hp else self.job
            size = values.get("train_size")
            if size is not None:
                spec = dict(job.dataset.sample_spec)
                seed = spec.pop("seed", 42)
                spec["train"] = size
                job = dataclasses.replace(job, dataset=job.dataset.sample(**spec, seed=seed))
            out.append(Cell(values.get("instance", "local"), values.get("nodes", 1), size, MappingProxyType(hp), job))
        return out

    def plans(self, *, local_speed: LocalSpeed | Mapping[int, LocalSpeed] | None = None,
              **options: Any) -> list[tuple[Cell, TrainingPlan]]:
        """Each cell's TrainingPlan (pure). ``options`` go to every cell's ``plan`` (SageMaker options, scale_lr)."""
        out = []
        for cell in self.cells():
            cell_options = dict(options)
            if cell.backend == "local":
                speed = local_speed.get(cell.nodes) if isinstance(local_speed, Mapping) else local_speed
                cell_options["local_speed"] = speed
            else:
                cell_options.setdefault("job_name", job_name_for(cell))
            out.append((cell, cell.job.plan(instance=cell.instance, nodes=cell.nodes, **cell_options)))
        return out

    def plan(self, *, local_speed: LocalSpeed | Mapping[int, LocalSpeed] | None = None, **options: Any) -> pd.DataFrame:
        """Pure: one row per cell with predicted time and cost, and a last row ``total`` (nothing is launched).

        Local cells are timed by this machine's measured speed (``local_speed``: one :class:`~sagefinetune.LocalSpeed`
        or ``{nodes: speed}``; :meth:`run` measures it itself), else a cached probe's, else a rough speed built in for
        this CPU (``kind`` ``"rough"``).
        """
        from sagefinetune.grid.result import plan_table

        return plan_table(self, self.plans(local_speed=local_speed, **options))

    def run(self, path: str | Path | None = None, *, parallel: int = 4, progress: bool = True,
            retry_failed: bool = False, boto_session: Any = None, poll_seconds: float = 30.0,
            **options: Any) -> GridResult:
        """Run every cell not yet finished in ``path`` and return the results (saved as ``path/results.csv``).

        Args:
            path: the grid folder: one run folder per cell and ``grid.json``, the state a second ``run`` resumes from
                (finished cells are not run again; a SageMaker job already launched is followed, not relaunched).
                Default ``sft-grids/<model>-<grid hash>``.
            parallel: SageMaker cells running at once (local cells run one after another).
            retry_failed: run cells that failed last time again (default: keep their recorded failure).
            poll_seconds: how often running SageMaker jobs are described.
            **options: for every cell's plan and fit: SageMaker options (``role``, ``bucket``, ``spot`` ...) and
                ``scale_lr``.
        """
        from sagefinetune.grid.runner import run_grid

        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise ConfigError(f"parallel must be a whole number >= 1; got {parallel!r}. Fix: run(parallel=4).")
        folder = Path(path) if path is not None else Path("sft-grids") / self.default_name()
        return run_grid(self, folder, parallel=parallel, progress=progress, retry_failed=retry_failed,
                        boto_session=boto_session, poll_seconds=poll_seconds, options=options)

    def default_name(self) -> str:
        from sagefinetune.plans.training import job_name

        digest = hashlib.sha256(json.dumps(sorted(c.key for c in self.cells())).encode()).hexdigest()[:8]
        return f"{job_name(self.job)}-grid-{digest}"

    def __repr__(self) -> str:
        axes = ", ".join(f"{k}={list(v)}" for k, v in self.axes.items())
        return redact(f"Grid<{len(self.cells())} cells over {axes or 'nothing'} from {self.job!r}>")
