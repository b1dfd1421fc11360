"""Running a grid: cells one after another here, several at once on SageMaker; a state file makes it resumable.

    <grid folder>/
      grid.json        each cell's status, job name or run folder, predicted and actual time, cost, metrics, error
      results.csv      GridResult.table
      <cell name>/     a local cell's run folder (a SageMaker cell's job.json)

A cell recorded ``Completed`` is never run again; a SageMaker cell recorded ``Running`` is followed, not relaunched
(Ctrl-C stops following, not the jobs); a local cell interrupted mid-run resumes from its checkpoints, which are
deleted once it has completed (its model folder stays); a ``Failed`` cell keeps its reason unless ``retry_failed``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.errors import SagefinetuneError

if TYPE_CHECKING:
    from sagefinetune.grid.grid import Cell, Grid
    from sagefinetune.grid.result import GridResult
    from sagefinetune.plans.training import TrainingPlan
    from sagefinetune.run import TrainingRun

STATE_FILE = "grid.json"
TERMINAL = ("Completed", "Failed", "Stopped")


class GridState:
    """``grid.json``: one record per cell key, written atomically after every change."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STATE_FILE
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.cells: dict[str, dict[str, Any]] = dict(data.get("cells", {}))

    def update(self, cell: Cell, **values: Any) -> dict[str, Any]:
        record = self.cells.setdefault(cell.key, {"name": cell.name, "values": cell.values})
        record.update(values)
        self.save()
        return record

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": 1, "cells": self.cells}, indent=1, default=str))
        os.replace(tmp, self.path)

    def status(self, cell: Cell) -> str:
        return str(self.cells.get(cell.key, {}).get("status", "Pending"))


class Progress:
    """A tqdm bar over the cells: done, running, left, failed and the money spent so far."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="grid", unit="cell", dynamic_ncols=True,
                            mininterval=0.2 if sys.stderr.isatty() else 5.0)

    def show(self, state: GridState, cells: list[Cell]) -> None:
        if self.bar is None:
            return
        statuses = [state.status(c) for c in cells]
        done = sum(s in TERMINAL for s in statuses)
        spent = sum(float(state.cells.get(c.key, {}).get("cost") or 0) for c in cells)
        self.bar.set_postfix({"done": done, "running": statuses.count("Running"), "left": statuses.count("Pending"),
                              "failed": sum(s in ("Failed", "Stopped") for s in statuses), "spent": f"${spent:.2f}"},
                             refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _todo(cells: list[Cell], state: GridState, retry_failed: bool) -> list[Cell]:
    skip = ("Completed",) if retry_failed else TERMINAL
    return [c for c in cells if state.status(c) not in skip]


# ---- local cells ---------------------------------------------------------------------------------------------
def _local_speeds(cells: list[Cell], progress: bool) -> dict[str, Any]:
    """This machine's speed for each distinct (settings, processes) among the cells: cached, else probed."""
    from sagefinetune.cost.local_speed import speed_key, speed_settings
    from sagefinetune.speed import measure_speed

    speeds: dict[str, Any] = {}
    for cell in cells:
        key = speed_key(speed_settings(cell.job, cell.nodes))
        if key not in speeds:
            try:
                speeds[key] = measure_speed(cell.job, cell.nodes, progress=progress)
            except SagefinetuneError as exc:  # no estimate for these cells; the cells still run
                print(f"[sagefinetune] speed probe failed: {_failure(exc)}", file=sys.stderr)
                speeds[key] = None
    return speeds


def _run_local(cells: list[Cell], folder: Path, state: GridState, bar: Progress, options: dict[str, Any],
               retry_failed: bool) -> dict[str, TrainingRun]:
    from sagefinetune.backends.local import drop_checkpoints
    from sagefinetune.cost.local_speed import speed_key, speed_settings
    from sagefinetune.run import TrainingRun

    runs: dict[str, TrainingRun] = {}
    todo = _todo(cells, state, retry_failed)
    speeds = _local_speeds(todo, bar.bar is not None)
    for cell in cells:
        run_dir = folder / cell.name
        if cell not in todo:
            if state.status(cell) == "Completed" and (run_dir / "model" / "metrics.json").exists():
                runs[cell.key] = TrainingRun.from_run_dir(run_dir)
            continue
        speed = speeds.get(speed_key(speed_settings(cell.job, cell.nodes)))
        try:
            plan = cell.job.plan(instance="local", nodes=cell.nodes, local_speed=speed, **options)
            state.update(cell, status="Running", run=str(run_dir), predicted=_estimate(plan), error=None)
            bar.show(state, cells)
            run = cell.job.fit(nodes=cell.nodes, run_dir=run_dir, progress=False, local_speed=speed, **options)
        except SagefinetuneError as exc:
            state.update(cell, status="Failed", error=_failure(exc))
        else:
            runs[cell.key] = run
            state.update(cell, status="Completed", predicted=_estimate(run.plan), actual_seconds=run.training_seconds,
                         billable_seconds=0.0, cost=0.0, metrics=run.metrics)
            drop_checkpoints(run_dir)  # a completed cell is never run again: its model folder stays
        bar.show(state, cells)
    return runs


def _estimate(plan: TrainingPlan | None) -> dict[str, Any] | None:
    return plan.estimate.to_dict() if plan is not None and plan.estimate is not None else None


# ---- SageMaker cells -------------------------------------------------------------------------------------------
def _launch(backend: Any, cell: Cell, folder: Path, state: GridState, options: dict[str, Any]) -> TrainingRun | None:
    try:
        plan = cell.job.plan(instance=cell.instance, nodes=cell.nodes, job_name=job_name_for(cell), **options)
        run = backend.fit(cell.job, plan, progress=False, wait=False)
    except SagefinetuneError as exc:
        state.update(cell, status="Failed", error=_failure(exc))
        return None
    state.update(cell, status="Running", job_name=run.name, run=run.name, predicted=_estimate(run.plan), error=None)
    return run


def _record(cell: Cell, run: TrainingRun, folder: Path, state: GridState) -> None:
    d = run.description or {}
    (folder / cell.name).mkdir(parents=True, exist_ok=True)
    (folder / cell.name / "job.json").write_text(json.dumps(d, indent=1, default=str))
    failed = run.status != "Completed"
    state.update(cell, status="Failed" if failed else "Completed", actual_seconds=run.training_seconds,
                 billable_seconds=run.billable_seconds, cost=run.cost.usd, metrics=run.metrics,
                 error=f"{run.status}: {d.get('FailureReason') or d.get('SecondaryStatus') or ''}" if failed else None)


def _run_sagemaker(cells: list[Cell], folder: Path, state: GridState, bar: Progress, options: dict[str, Any],
                   parallel: int, retry_failed: bool, boto_session: Any, poll_seconds: float) -> dict[str, TrainingRun]:
    from sagefinetune.backends.sagemaker.aws import aws_errors
    from sagefinetune.backends.sagemaker.training import SageMakerBackend
    from sagefinetune.run import TrainingRun

    backend = SageMakerBackend(boto_session, region=options.get("region"))
    todo = _todo(cells, state, retry_failed)
    running: dict[str, tuple[Cell, str]] = {}
    for cell in todo:  # launched before an interruption: follow them, do not pay twice
        record = state.cells.get(cell.key, {})
        if record.get("status") == "Running" and record.get("job_name"):
            running[cell.key] = (cell, record["job_name"])
    queue = [c for c in todo if c.key not in running]
    runs: dict[str, TrainingRun] = {}
    while queue or running:
        while queue and len(running) < parallel:
            cell = queue.pop(0)
            launched = _launch(backend, cell, folder, state, options)
            if launched is not None:
                running[cell.key] = (cell, launched.name)
            bar.show(state, cells)
        for key, (cell, name) in list(running.items()):
            with aws_errors("DescribeTrainingJob"):
                description = backend.client("sagemaker").describe_training_job(TrainingJobName=name)
            if description["TrainingJobStatus"] in TERMINAL:
                run = TrainingRun.from_record(backend.describe(name, description=description), backend)  # cost: once, at the end
                _record(cell, run, folder, state)
                runs[key] = run
                del running[key]
                bar.show(state, cells)
        if running:
            time.sleep(poll_seconds)
    return runs


def run_grid(grid: Grid, folder: Path, *, parallel: int, progress: bool, retry_failed: bool, boto_session: Any,
             poll_seconds: float, options: Mapping[str, Any]) -> GridResult:
    """Run the cells of ``grid`` not finished in ``folder``; write ``results.csv``; return the GridResult."""
    from sagefinetune.grid.result import GridResult, result_table

    cells = grid.cells()
    grid.plans(**{k: v for k, v in options.items()})  # every cell's plan checked before anything runs or costs
    folder.mkdir(parents=True, exist_ok=True)
    state = GridState(folder)
    bar = Progress(len(cells), progress)
    bar.show(state, cells)
    try:
        if cells[0].backend == "local":
            runs = _run_local(cells, folder, state, bar, dict(options), retry_failed)
        else:
            runs = _run_sagemaker(cells, folder, state, bar, dict(options), parallel, retry_failed, boto_session,
                                  poll_seconds)
    finally:
        bar.close()
    table = result_table(cells, state.cells)
    table.to_csv(folder / "results.csv", index=False)
    group = ("train_size", *[k for k in grid.axes if k not in ("instance", "nodes", "train_size")])
    return GridResult(folder, table, {c.name: runs[c.key] for c in cells if c.key in runs}, group)


def job_name_for(cell: Cell) -> str:
    """A SageMaker base job name per cell (the SDK appends the launch second): cells launched together differ."""
    from sagefinetune.plans.training import job_name

    return f"{job_name(cell.job)[:38].rstrip('-')}-{cell.key[:8]}"
