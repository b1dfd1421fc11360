"""A real benchmark grid on this machine: 1 and 2 worker processes x two data sizes, predicted next to actual.

    python examples/benchmark_grid.py                      # about 1-2 minutes on 2 CPU cores
    python examples/benchmark_grid.py --sizes 400 800 --layers 2 --docs docs/_static   # the docs' run

It measures this machine's speed (a probe of a few steps per process count, cached), runs the four cells one after
another, and writes ``results.csv`` and ``grid.png`` in the grid folder. Run it again: finished cells are not run
again. The same code runs on SageMaker with ``instance=[...]`` in ``over(...)`` (see docs/benchmark-grid.rst).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sagefinetune as sft

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
COLUMNS = ["cell", "nodes", "train_size", "status", "predicted_seconds", "actual_seconds", "time_error", "accuracy",
           "f1", "samples_per_second", "speedup", "scaling_efficiency"]


def build_grid(sizes: list[int], layers: int = 1, epochs: float = 3) -> sft.Grid:
    """BBC News (5 topics), the first ``layers`` of MiniLM's 6, the first 48 tokens: a real fine-tune in seconds."""
    job = (
        sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(test=100, seed=1))
        .model(MODEL, num_hidden_layers=layers)
        .hyperparameters(epochs=epochs, batch_size=16, learning_rate=1e-3, max_length=48,
                         save_total_limit=1)  # one checkpoint per cell: enough to resume it
    )
    return sft.Grid(job).over(nodes=[1, 2], train_size=sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="train rows per cell")
    parser.add_argument("--layers", type=int, default=1, help="MiniLM layers kept (of 6)")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--out", default="sft-grids/benchmark-grid", help="the grid folder")
    parser.add_argument("--docs", help="also write grid-local.csv and grid-local.png there (the tutorial's copy)")
    args = parser.parse_args()

    grid = build_grid(args.sizes, args.layers, args.epochs)
    print(grid, "\n")
    result = grid.run(args.out, progress=False)
    table = result.table[COLUMNS]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    errors = table["time_error"].abs()
    print(f"\npredicted vs actual: median |error| {errors.median():.0%}, worst {errors.max():.0%}")
    title = "MiniLM on BBC News, this machine: 1 and 2 worker processes"
    result.plot(Path(args.out) / "grid.png", title=title)
    print(f"wrote {Path(args.out) / 'results.csv'} and {Path(args.out) / 'grid.png'}")
    if args.docs:
        short = table.assign(cell=table["cell"].str.rsplit("-", n=1).str[0]).drop(columns=["status"])
        short.round(3).to_csv(Path(args.docs) / "grid-local.csv", index=False)
        result.plot(Path(args.docs) / "grid-local.png", title=title)


if __name__ == "__main__":
    main()
