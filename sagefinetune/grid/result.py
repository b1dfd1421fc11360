"""A grid's results as data (a pandas DataFrame, saved as CSV next to the runs) and the figures drawn from it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.deps import require

if TYPE_CHECKING:
    import pandas as pd

    from sagefinetune.grid.grid import Cell, Grid
    from sagefinetune.plans.training import TrainingPlan
    from sagefinetune.run import TrainingRun

__all__ = ["GridResult", "plan_table", "result_table", "plot_table", "seed_table"]

RESULT_COLUMNS = ("status", "predicted_seconds", "predicted_low", "predicted_high", "actual_seconds", "time_error",
                  "billable_seconds", "predicted_cost", "cost", "accuracy", "f1", "samples_per_second", "speedup",
                  "scaling_efficiency", "basis", "error", "run")


def _gpus(cell: Cell) -> int:
    if cell.instance == "local":
        return cell.nodes  # worker processes
    from sagefinetune.facts.instances import lookup

    return lookup(cell.instance).gpus * cell.nodes


def _cell_columns(cell: Cell, name: str) -> dict[str, Any]:
    return {"cell": name, "instance": cell.instance, "nodes": cell.nodes, "gpus": _gpus(cell),
            "train_size": cell.train_size, **dict(cell.hyperparameters)}


def plan_table(grid: Grid, plans: Sequence[tuple[Cell, TrainingPlan]]) -> pd.DataFrame:
    """One row per cell with its predicted time and cost, and a ``total`` row (seconds: one after another)."""
    import pandas as pd

    rows = []
    for cell, plan in plans:
        est = plan.estimate
        assert est is not None
        rows.append({**_cell_columns(cell, cell.name), "steps": est.steps, "predicted_seconds": est.seconds,
                     "predicted_low": est.seconds_low, "predicted_high": est.seconds_high,
                     "predicted_billable_seconds": est.billable_seconds, "predicted_cost": est.cost,
                     "predicted_cost_low": est.cost_low, "predicted_cost_high": est.cost_high,
                     "predicted_spot_cost": est.spot_cost, "kind": est.kind, "basis": est.basis})
    table = pd.DataFrame(rows)
    sums = ("predicted_seconds", "predicted_low", "predicted_high", "predicted_billable_seconds", "predicted_cost",
            "predicted_cost_low", "predicted_cost_high", "predicted_spot_cost")
    total: dict[str, Any] = {"cell": "total", "kind": "sum of the cells"}
    for column in sums:
        values = table[column]
        total[column] = float(values.sum()) if values.notna().all() else None
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    table = table.astype({c: "Int64" for c in ("nodes", "gpus", "train_size", "steps")})
    table.attrs["total"] = {k: total[k] for k in sums}
    return table


def result_table(cells: Sequence[Cell], states: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The grid's table from its recorded state: predicted next to actual, metrics, scaling efficiency."""
    import pandas as pd

    rows = []
    for cell in cells:
        state = states.get(cell.key, {})
        predicted = state.get("predicted") or {}
        metrics = state.get("metrics") or {}
        actual = state.get("actual_seconds")
        guess = predicted.get("seconds")
        rows.append({
            **_cell_columns(cell, cell.name), "status": state.get("status", "Pending"),
            "predicted_seconds": guess, "predicted_low": predicted.get("seconds_low"),
            "predicted_high": predicted.get("seconds_high"), "actual_seconds": actual,
            "time_error": (guess / actual - 1) if guess and actual else None,
            "billable_seconds": state.get("billable_seconds"), "predicted_cost": predicted.get("cost"),
            "cost": state.get("cost"), "accuracy": metrics.get("eval_accuracy", metrics.get("eval_subset_accuracy")),
            "f1": metrics.get("eval_f1", metrics.get("eval_f1_micro")),
            "samples_per_second": metrics.get("train_samples_per_second"), "basis": predicted.get("kind"),
            "error": state.get("error"), "run": state.get("run"),
        })
    return add_scaling(pd.DataFrame(rows), [k for k in cells[0].hyperparameters] if cells else [])


def add_scaling(table: pd.DataFrame, group: Sequence[str]) -> pd.DataFrame:
    """``speedup`` and ``scaling_efficiency`` against the cell with the fewest GPUs of the same GPU, data and settings."""
    from sagefinetune.facts.instances import INSTANCES

    table = table.copy()
    table["gpu"] = [INSTANCES[i].gpu if i in INSTANCES else "local" for i in table["instance"]]
    speedups: list[float | None] = []
    efficiency: list[float | None] = []
    keys = ["gpu", "train_size", *group]
    for _, row in table.iterrows():
        same = table
        for k in keys:
            same = same[(same[k] == row[k]) | (same[k].isna() & (row[k] is None or _isnan(row[k])))]
        done = same[same["actual_seconds"].notna()]
        if done.empty or row["actual_seconds"] is None or _isnan(row["actual_seconds"]):
            speedups.append(None)
            efficiency.append(None)
            continue
        base = done.loc[done["gpus"].idxmin()]
        speedup = base["actual_seconds"] / row["actual_seconds"]
        speedups.append(float(speedup))
        efficiency.append(float(speedup / (row["gpus"] / base["gpus"])))
    table["speedup"] = speedups
    table["scaling_efficiency"] = efficiency
    return table.drop(columns=["gpu"])


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def seed_table() -> pd.DataFrame:
    """The 25 runs of the AWS SageMaker Hugging Face benchmark in the grid table's shape, with the leave-one-out prediction of each next to it."""
    import pandas as pd

    from sagefinetune.cost.calibration import TRAIN_SHARE, seed_runs
    from sagefinetune.cost.estimate import calibration_data

    loo = {r["run"]: r for r in calibration_data()["leave_one_out"]["runs"]}
    rows = []
    for run in seed_runs():
        predicted = loo[run["run"]]
        rows.append({
            "cell": f"run{run['run']}", "instance": run["instance"], "nodes": run["nodes"], "gpus": run["gpus"],
            "train_size": int(run["dataset_size"] * TRAIN_SHARE), "learning_rate": run["learning_rate"],
            "batch_size": run["batch_size"], "status": "Completed",
            "predicted_seconds": predicted["predicted_seconds"], "actual_seconds": run["seconds"],
            "time_error": predicted["time_error"], "billable_seconds": run["billable_seconds"],
            "predicted_cost": predicted["predicted_cost"], "cost": run["cost"], "f1": run["f1"],
            "samples_per_second": run["dataset_size"] * TRAIN_SHARE * run["epochs"] / run["seconds"],
            "basis": "leave-one-out",
        })
    return add_scaling(pd.DataFrame(rows).sort_values(["train_size", "gpus", "cell"], ignore_index=True),
                       ["learning_rate", "batch_size"])


def _series_label(key: Any, names: Sequence[str]) -> str:
    values = key if isinstance(key, tuple) else (key,)
    parts = []
    for name, value in zip(names, values):
        if name == "train_size":
            parts.append(f"{int(value):,} rows")
        else:
            parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
    return ", ".join(parts)


def plot_table(table: pd.DataFrame, path: str | Path | None = None, *, group: Sequence[str] = ("train_size",),
               title: str | None = None) -> Any:
    """Time, cost and F1 against GPUs, one line per data size (and settings): actual solid, predicted dashed.

    Local grids cost nothing: their middle panel is the training throughput instead."""
    require("matplotlib", "plot a grid")
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    done = table[(table["cell"] != "total") & table["actual_seconds"].notna()]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    free = bool(done["cost"].fillna(0).eq(0).all())  # local: no cost to draw, so the throughput instead
    panels = (("actual_seconds", "predicted_seconds", "training seconds"),
              ("samples_per_second", None, "training samples per second (local: no cost)") if free else
              ("cost", "predicted_cost", "cost (USD)"), ("f1", None, "F1 on the test split"))
    group = [g for g in group if g in done.columns and done[g].notna().any()] or ["train_size"]
    for ax, (actual, predicted, label) in zip(axes, panels):
        for i, (key, part) in enumerate(done.groupby(list(group), sort=True, dropna=False)):
            color = f"C{i}"
            means = part.groupby("gpus")[[c for c in (actual, predicted) if c]].mean(numeric_only=True)
            ax.plot(means.index, means[actual], "o-", color=color, label=_series_label(key, group))
            ax.scatter(part["gpus"], part[actual], color=color, s=12, alpha=0.5)
            if predicted and means[predicted].notna().any():
                ax.plot(means.index, means[predicted], "x--", color=color, alpha=0.7)
        gpus = sorted(int(g) for g in done["gpus"].unique())
        if gpus and gpus[-1] / gpus[0] >= 4:
            ax.set_xscale("log", base=2)
        if actual == "actual_seconds" and done[actual].max() > 10 * done[actual].min():
            ax.set_yscale("log")
        ax.set_xticks(gpus, [str(g) for g in gpus])
        ax.set_xlabel("GPUs (local: worker processes)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title="solid: measured, dashed: predicted", title_fontsize=8)
    fig.suptitle(title or "time, cost and F1 against GPUs")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


@dataclass(frozen=True)
class GridResult:
    """What a grid run gives: ``table`` (one row per cell, also in ``path/results.csv``) and the runs.

    Columns: cell, instance, nodes, gpus (local: worker processes), train_size, the hyperparameter axes, status,
    predicted_seconds (and its low/high), actual_seconds, time_error (predicted / actual - 1), billable_seconds,
    predicted_cost, cost, accuracy, f1, samples_per_second, speedup and scaling_efficiency (against the cell with
    the fewest GPUs of the same GPU type, data size and settings), basis, error (why a cell failed), run.
    """

    path: Path | None
    table: pd.DataFrame
    runs: dict[str, TrainingRun] = field(default_factory=dict)
    group: tuple[str, ...] = ("train_size",)

    @property
    def spent(self) -> float:
        """USD billed for the finished cells."""
        return float(self.table["cost"].fillna(0).sum())

    @property
    def failed(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "Failed"]

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """Time and cost against GPUs for each data size, and F1 against GPUs; saves to ``path`` or shows; the Figure."""
        return plot_table(self.table, path, group=self.group, title=title)

    @classmethod
    def from_seed(cls) -> GridResult:
        """The 25 SageMaker runs of the AWS SageMaker Hugging Face benchmark as a grid result (predicted: each run's leave-one-out prediction)."""
        return cls(None, seed_table(), group=("train_size", "learning_rate", "batch_size"))
