"""CPU serving: PyTorch fp32 against ONNX Runtime fp32 and int8, on the same trained model and test rows.

    python benchmarks/onnx_speed.py [--run-dir sft-runs/onnx-bench] [--train 2000] [--test 500] [--threads 2]

Trains MiniLM on Rotten Tomatoes (the quickstart's data; skipped when --run-dir already holds a finished run),
exports it with ``run.export("onnx")`` and ``run.export("onnx", quantize="int8")``, then prints for each of the three:
the p50 latency of one text at a time (batch 1), the throughput at batch 32 (texts per second, tokenisation
included: what a server pays), and the accuracy on the test split. The three are timed in turns, round after round,
so a busy machine slows them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import sagefinetune as sft
from sagefinetune.runtime.loading import Runtime, load_runtime


def train(run_dir: Path, rows: int, test: int) -> sft.TrainingRun:
    if (run_dir / "model" / "metrics.json").exists():
        return sft.TrainingRun.from_run_dir(run_dir)
    job = (sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes").sample(train=rows, test=test, seed=42))
           .map_labels({0: "negative", 1: "positive"})
           .hyperparameters(epochs=1, batch_size=32, max_length=128))
    return job.fit(run_dir=run_dir, progress=False)


def timed_rounds(runtimes: dict[str, Runtime], texts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """p50 latency at batch 1 and texts/s at batch 32, each runtime in turn every round."""
    single: dict[str, list[float]] = {name: [] for name in runtimes}
    rates: dict[str, list[float]] = {name: [] for name in runtimes}
    singles = texts[:50]
    for rt in runtimes.values():  # warm-up: first calls allocate
        rt.probabilities(texts[:32])
    for _ in range(rounds):
        for name, rt in runtimes.items():
            for text in singles:
                started = time.perf_counter()
                rt.probabilities([text])
                single[name].append(time.perf_counter() - started)
            rt.batch_size = 32
            started = time.perf_counter()
            rt.probabilities(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    return {name: {"p50_ms": 1000 * statistics.median(single[name]), "texts_per_s": statistics.median(rates[name])}
            for name in runtimes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="sft-runs/onnx-bench")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    run = train(Path(args.run_dir), args.train, args.test)
    exports = {"onnx fp32": run.export("onnx"), "onnx int8": run.export("onnx", quantize="int8")}
    runtimes = {"pytorch fp32": load_runtime(run.model_dir, threads=args.threads)}
    runtimes.update({name: load_runtime(e.path, threads=args.threads) for name, e in exports.items()})
    accuracy = {"pytorch fp32": exports["onnx int8"].reference_accuracy,
                **{name: e.accuracy for name, e in exports.items()}}
    size = {"pytorch fp32": (run.model_dir / "model.safetensors").stat().st_size,
            **{name: e.size_bytes for name, e in exports.items()}}

    import pyarrow.parquet as pq

    texts = [t or "" for t in pq.read_table(Path(run.run_dir or ".") / "input/data/test/data.parquet")["text"].to_pylist()]
    result = timed_rounds(runtimes, texts, args.rounds)

    print(f"\nMiniLM-L6 on rotten_tomatoes ({args.train} train / {len(texts)} test rows), {args.threads} threads, "
          f"max_length {runtimes['pytorch fp32'].max_length}, {os.cpu_count()} cores")
    print(f"{'model':<14}{'MB':>7}{'p50 batch 1 ms':>16}{'batch 32 texts/s':>18}{'vs pytorch':>12}{'accuracy':>10}")
    base = result["pytorch fp32"]["texts_per_s"]
    for name, r in result.items():
        print(f"{name:<14}{size[name] / 1e6:>7.1f}{r['p50_ms']:>16.1f}{r['texts_per_s']:>18.1f}"
              f"{r['texts_per_s'] / base:>11.2f}x{accuracy[name]:>10.4f}")
    int8 = result["onnx int8"]["texts_per_s"] / base
    drop = accuracy["pytorch fp32"] - accuracy["onnx int8"]
    print(f"int8: {int8:.2f}x PyTorch's throughput at batch 32 (target >= 2x), accuracy {100 * drop:+.2f} points "
          "below it (target <= 1)")


if __name__ == "__main__":
    main()
