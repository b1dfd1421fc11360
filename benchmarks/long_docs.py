"""Long documents: the old fixed max_length against max_length="auto", and head-only against head+tail at equal length.

    python benchmarks/long_docs.py [--train 1200] [--test 500] [--epochs 1] [--seed 42]
                                   [--out benchmarks/results/long_docs.json]

The bundled IMDB reviews (median about 230 tokens, a long tail past 512): ``train`` rows, one epoch, MiniLM-L6, the
library's defaults otherwise. Three fits through ``fit()`` and the entry point, identical but for how texts are cut:

- ``256 head``: the fixed ``max_length=256`` that was the default before ``"auto"``;
- ``auto head``: the default now, ``max_length="auto"`` (the train rows' 95th percentile, capped at the model's 512);
- ``auto head+tail``: the same length, keeping the first quarter and the last three quarters (Sun et al. 2019).

Prints accuracy, macro F1 and the training time of each, the time against the old default's, the machine and its load,
and writes them as JSON. Reads no network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import sagefinetune as sft

SETUPS = {"256 head": {"max_length": 256}, "auto head": {}, "auto head+tail": {"truncation": "head+tail"}}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def fit(setup: dict, train: int, test: int, epochs: float, seed: int, folder: Path) -> dict:
    data = sft.Dataset.example("imdb").sample(train=train, test=test, seed=seed)
    job = sft.Job.from_dataset(data).hyperparameters(epochs=epochs, seed=seed, save_total_limit=1, **setup)
    plan = job.plan()
    started = time.monotonic()
    run = job.fit(run_dir=folder, progress=False)
    return {"max_length": int(run.plan.hyperparameters["max_length"]), "planned_length": plan.length.line()
            if plan.length else None, "accuracy": run.metrics["eval_accuracy"], "f1": run.metrics["eval_f1"],
            "train_seconds": run.metrics.get("train_runtime"), "wall_seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "long_docs.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="sft-long-docs-") as tmp:
        for name, setup in SETUPS.items():
            results[name] = fit(setup, args.train, args.test, args.epochs, args.seed, Path(tmp) / name.replace(" ", "-"))
            print(f"{name:>15}: {json.dumps(results[name])}", flush=True)
    base = results["256 head"]["train_seconds"] or 1
    print(f"\nIMDB, {args.train} train rows, {args.test} test rows, {args.epochs:g} epoch(s), seed {args.seed}")
    print(f"{'setup':>15}  max_length  accuracy  macro F1  training  vs 256 head")
    for name, r in results.items():
        print(f"{name:>15}  {r['max_length']:>10}  {r['accuracy']:>8.3f}  {r['f1']:>8.3f}  {r['train_seconds']:>7.0f}s"
              f"  {r['train_seconds'] / base:>9.2f}x")
    machine = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "load": os.getloadavg()}
    print(f"machine: {machine['cpu']}, {machine['cores']} cores usable, load average {machine['load'][0]:.1f} at the end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine,
                                    "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
