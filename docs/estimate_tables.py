"""Tables for docs/benchmark-grid.rst, written at build time from the package's own data (so the docs cannot drift)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str], widths: str | None = None) -> str:
    out = [".. list-table::", "   :header-rows: 1"] + ([f"   :widths: {widths}"] if widths else []) + [""]
    for row in [header, *rows]:
        out.append("   * - " + str(row[0]))
        out += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(out) + "\n"


def leave_one_out() -> str:
    from sagefinetune.cost.estimate import calibration_data

    loo = calibration_data()["leave_one_out"]
    rows = [(r["run"], r["instance"], r["gpus"], r["nodes"], r["batch_size"], f"{r['dataset_size']:,}",
             f"{r['seconds']:,.0f}", f"{r['predicted_seconds']:,.0f}", f"{r['time_error']:+.1%}", f"{r['cost']:.2f}",
             f"{r['predicted_cost']:.2f}", f"{r['cost_error']:+.1%}")
            for r in sorted(loo["runs"], key=lambda r: (r["gpus"], r["dataset_size"], r["run"]))]
    header = ("run", "instance", "GPUs", "nodes", "batch/GPU", "data size", "seconds", "predicted", "error", "cost $",
              "predicted $", "error")
    summary = (f"\nMedian absolute error: time {loo['median_abs_time_error']:.1%}, cost {loo['median_abs_cost_error']:.1%}; "
               f"worst run: time {loo['max_abs_time_error']:.1%}, cost {loo['max_abs_cost_error']:.1%} "
               "(the bound the tests assert: median at most 15%, every run within 35%).\n")
    return _table(rows, header) + summary


def gpu_speeds() -> str:
    from sagefinetune.cost.estimate import calibration
    from sagefinetune.cost.throughput import GPUS, relative_speed
    from sagefinetune.facts.instances import INSTANCES

    share = calibration().memory_share
    rows = []
    for name, gpu in GPUS.items():
        used = ", ".join(n.replace("ml.", "") for n, i in INSTANCES.items() if i.gpu == name) or "(published check only)"
        mixed = "fp16" if name in ("V100", "T4") else "bf16"
        rows.append((name, gpu.fp32, gpu.tensor16, f"{gpu.memory_gbps:.0f}", f"{relative_speed(name, 'fp32', share):.2f}",
                     f"{relative_speed(name, mixed, share):.2f} ({mixed})", used, gpu.source))
    header = ("GPU", "fp32 TFLOP/s", "fp16/bf16 TFLOP/s", "memory GB/s", "speed fp32", "speed mixed", "instances", "source")
    return _table(rows, header)


def nvidia_check() -> str:
    from sagefinetune.cost.estimate import calibration_data

    speeds = calibration_data()["gpu_speeds"]
    rows = [(p["workload"], p["gpu"], p["precision"], f"{p['published']:.2f}", f"{p['model']:.2f}",
             f"{p['model'] / p['published'] - 1:+.0%}") for p in speeds["points"]]
    return (_table(rows, ("NVIDIA measurement", "GPU", "precision", "published x V100 fp32", "rule", "difference"))
            + f"\nFitted memory-bound share: {speeds['memory_share']:.3f}. Source: {speeds['source']}.\n")


def seed_summary() -> str:
    from sagefinetune.grid.result import seed_table

    table = seed_table()
    default = table[(table["learning_rate"] == 5e-05) & (table["batch_size"] == 32)]
    one = default[default["gpus"] == 1]["actual_seconds"].mean()
    rows = []
    for (gpus, nodes), part in default.groupby(["gpus", "nodes"]):
        f1 = part.groupby("train_size")["f1"].mean()
        rows.append((gpus, nodes, part["instance"].iloc[0], f"{part['actual_seconds'].mean():,.0f}",
                     f"{one / part['actual_seconds'].mean():.1f}x", f"{part['cost'].mean():.2f}",
                     " / ".join(f"{f1[n]:.3f}" if n in f1 else "-" for n in (90_000, 540_000, 900_000))))
    header = ("GPUs", "nodes", "instance", "seconds (mean)", "speed-up", "cost $ (mean)", "F1 at 100k / 600k / 1M rows")
    return _table(rows, header)


def plan_example() -> str:
    import sagefinetune as sft

    job = (sft.Job.from_dataset(sft.Dataset.example("imdb"))
           .map_labels(sft.LabelMap.names(["negative", "positive"]))
           .hyperparameters(epochs=2, batch_size=32, learning_rate=5e-5, max_length=256))
    return str(job.plan(instance="ml.g5.12xlarge", nodes=2, spot=True).estimate) + "\n"


def plan_search() -> str:
    """The search of the SageMaker page: its lines, the first candidates, one that misses, and an impossible ask."""
    import sagefinetune as sft

    job = (sft.Job.from_dataset(sft.Dataset.example("imdb"))
           .map_labels(sft.LabelMap.names(["negative", "positive"]))
           .hyperparameters(epochs=2, batch_size=32, learning_rate=5e-5, max_length=256))
    plan = job.plan(deadline="1h", budget=40, train_rows=2_000_000)
    table = plan.candidates.round(2)
    out = ["print(plan)  # ... the plan of the chosen setup, then:"] + [line.rstrip() for line in plan.search.lines()]
    out += ["", "plan.candidates  # 128 rows; the first four, and the first that misses:",
            table.loc[list(table.index[:4]) + [table.index[~table["meets"]][0]]].to_string(), ""]
    try:
        job.plan(deadline="10m", budget=1, train_rows=2_000_000)
    except sft.ConfigError as exc:
        out += ["job.plan(deadline='10m', budget=1, train_rows=2_000_000)", f"ConfigError: {exc}"]
    return "\n".join(out) + "\n"


def write(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, make in (("leave-one-out.rst", leave_one_out), ("gpu-speeds.rst", gpu_speeds),
                       ("nvidia-check.rst", nvidia_check), ("seed-summary.rst", seed_summary),
                       ("plan-estimate.txt", plan_example), ("plan-search.txt", plan_search)):
        with open(os.path.join(folder, name), "w") as fh:
            fh.write(make())
