"""How long ``job.plan(deadline=..., budget=...)`` takes: the search over every setup, and each plan's advice.

    python benchmarks/plan_search.py [--rows 2000000] [--repeat 5]

The search times 16 GPU types x 1, 2, 4, 8 nodes with the calibrated estimate (64 estimates; spot reuses them), picks,
and builds the chosen plan, whose advice runs the same search on demand. It is pure, so the time is CPU only. The first
call in a process also imports the modules and reads the shipped tables; the rest are what a notebook sees after that.
Printed, never asserted: the tests check only that a search does no I/O.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="train_rows of the plan (default 2,000,000)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    import sagefinetune as sft

    job = (sft.Job.from_dataset(sft.Dataset.example("imdb"))
           .map_labels(sft.LabelMap.names(["negative", "positive"]))
           .hyperparameters(epochs=2, batch_size=32, max_length=256))
    first = job.plan(deadline="3h", budget=40, train_rows=args.rows)
    print(f"first search, imports and shipped tables included: {time.perf_counter() - start:.3f} s")

    times = []
    for i in range(args.repeat):
        start = time.perf_counter()
        plan = job.plan(deadline="3h", budget=40 + i, train_rows=args.rows)  # another ask each time: nothing reused
        times.append(time.perf_counter() - start)
    print(f"search and plan, {args.repeat} more: median {statistics.median(times):.3f} s, most {max(times):.3f} s")
    start = time.perf_counter()
    job.plan(instance="ml.g5.12xlarge", nodes=2, train_rows=args.rows)
    print(f"an ordinary SageMaker plan (its advice runs the on-demand search): {time.perf_counter() - start:.3f} s")
    assert first.search is not None and plan.search is not None
    print(f"{len(plan.candidates)} setups; chosen {plan.search.chosen.describe()}; {plan.search.binding}")


if __name__ == "__main__":
    main()
