"""The measurements behind the default learning rate and warmup: MiniLM-L6 on small data, 1 epoch.

    python benchmarks/defaults.py [--compare | --quick] [--out benchmarks/results/defaults.json]

Two jobs a new user runs first, each fitted over a grid of learning rates (and two warmups, two seeds); with
``--compare`` only twice each: the old defaults (learning_rate 5e-5, warmup 0.06) against what the plan chooses now
(nothing set):
- the quickstart: 2,000 Rotten Tomatoes rows (500 test), 1 epoch, batch 32, max_length 128 (63 optimizer steps);
- 1,200 IMDB reviews (500 test), 1 epoch, batch 32, max_length 128 (38 steps).
Everything else is the library's default (dynamic padding, length-grouped batches, precision auto). Prints a table
of accuracy and training time per setting and writes it as JSON. Accuracy is deterministic for a seed; times
depend on the machine and its load. Reads no network; each fit takes a minute or two on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import sagefinetune as sft

RATES = (5e-5, 1e-4, 1.5e-4, 2e-4, 3e-4)


def jobs() -> dict[str, sft.Job]:
    rotten = (sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes").sample(train=2000, test=500, seed=42))
              .map_labels({0: "negative", 1: "positive"}))
    imdb = (sft.Job.from_dataset(sft.Dataset.example("imdb").sample(train=1200, test=500, seed=42))
            .map_labels({0: "negative", 1: "positive"}))
    return {name: job.hyperparameters(epochs=1, batch_size=32, max_length=128) for name, job in
            (("quickstart (rotten_tomatoes 2000)", rotten), ("imdb 1200", imdb))}


OLD_DEFAULTS = {"learning_rate": 5e-5, "warmup": 0.06}


def settings(quick: bool, compare: bool = False) -> list[dict[str, float]]:
    if compare:
        return [OLD_DEFAULTS, {}]  # {}: the plan's choice for the model
    grid = [{"learning_rate": lr, "warmup": 0.06, "seed": 42} for lr in RATES]
    if not quick:
        grid += [{"learning_rate": 1.5e-4, "warmup": 0.1, "seed": 42}, {"learning_rate": 2e-4, "warmup": 0.1, "seed": 42}]
        grid += [{"learning_rate": lr, "warmup": 0.06, "seed": 7} for lr in (5e-5, 1.5e-4, 2e-4)]
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the learning-rate grid, one seed")
    parser.add_argument("--compare", action="store_true", help="only the old defaults against the chosen ones")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "defaults.json"))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, job in jobs().items():
            for setting in settings(args.quick, args.compare):
                started = time.perf_counter()
                fitted = job.hyperparameters(**setting)
                chosen = fitted.plan().hyperparameters
                setting = {"learning_rate": float(chosen["learning_rate"]), "warmup": float(chosen["warmup"]),
                           "seed": int(chosen.get("seed", 42)), **setting}
                run = fitted.fit(run_dir=f"{tmp}/{len(rows)}", progress=False)
                rows.append({"job": name, **setting, "accuracy": run.metrics["eval_accuracy"],
                             "train_seconds": round(run.metrics["train_runtime"], 1),
                             "fit_seconds": round(time.perf_counter() - started, 1),
                             "steps": run.metrics.get("train_global_step")})
                print(f"{name} {setting}: accuracy {rows[-1]['accuracy']:.4f} in {rows[-1]['train_seconds']} s",
                      flush=True)
    print(f"\n{'job':<36}{'lr':>9}{'warmup':>8}{'seed':>6}{'steps':>7}{'accuracy':>10}{'train s':>9}")
    for r in rows:
        print(f"{r['job']:<36}{r['learning_rate']:>9.1e}{r['warmup']:>8}{r['seed']:>6}{r['steps'] or 0:>7.0f}"
              f"{r['accuracy']:>10.4f}{r['train_seconds']:>9.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "processor": platform.processor() or platform.machine()}
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
