"""Class weights on imbalanced data: the same fine-tune with and without ``class_weights="balanced"``.

    python benchmarks/imbalance.py [--example rotten_tomatoes] [--train 1300] [--test 650] [--ratio 12]
                                   [--epochs 2] [--layers 6] [--seeds 42] [--out benchmarks/results/imbalance.json]

A bundled binary set (rotten_tomatoes or imdb) is subsampled so that its positive reviews outnumber the negative
ones ``ratio`` to 1, in train and in test alike (the test split keeps the imbalance a deployed model meets). Each
seed fits MiniLM-L6 twice, through ``fit()`` and the entry point, identical but for the loss: plain cross-entropy,
then the balanced class weights. Prints macro F1 (``eval_f1``), accuracy, the rare class's recall and F1, and the
training time of each, with the machine and its load, and writes them as JSON. Reads no network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

import sagefinetune as sft

LABELS = {0: "negative", 1: "positive"}


def imbalanced(example: str, train: int, test: int, ratio: float, seed: int = 0) -> sft.Dataset:
    """``train`` and ``test`` rows of the bundled set with positives ``ratio`` times the negatives in both."""
    rows = sft.Dataset.example(example).load()
    frame = pd.concat([rows[split].to_pandas() for split in rows]).drop_duplicates("text")
    frame = frame.sample(frac=1, random_state=seed)
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "test": []}
    for label, share in ((1, ratio / (ratio + 1)), (0, 1 / (ratio + 1))):
        pool = frame[frame.label == label]
        n_train, n_test = round(train * share), round(test * share)
        parts["train"].append(pool.iloc[:n_train])
        parts["test"].append(pool.iloc[n_train:n_train + n_test])
    frames = {split: pd.concat(p).sample(frac=1, random_state=seed) for split, p in parts.items()}
    return sft.Dataset.from_pandas(frames)


def machine() -> dict[str, object]:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    return {"python": platform.python_version(), "processor": cpu, "cpus": os.cpu_count(), "torch": torch.__version__, "transformers": transformers.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def rare_class(run: sft.TrainingRun) -> dict[str, float]:
    report = json.loads((run.run_dir / "output" / "data" / "classification_report.json").read_text())
    return {"rare_recall": report["negative"]["recall"], "rare_f1": report["negative"]["f1-score"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default="rotten_tomatoes", choices=("rotten_tomatoes", "imdb"))
    parser.add_argument("--train", type=int, default=1300)
    parser.add_argument("--test", type=int, default=650)
    parser.add_argument("--ratio", type=float, default=12.0)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--layers", type=int, default=6, help="MiniLM layers kept (6: the whole model)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "imbalance.json"))
    args = parser.parse_args()

    data = imbalanced(args.example, args.train, args.test, args.ratio)
    job = (sft.Job.from_dataset(data).map_labels(LABELS).model("sentence-transformers/all-MiniLM-L6-v2",
                                                               num_hidden_layers=args.layers)
           .hyperparameters(epochs=args.epochs, batch_size=32, max_length=args.max_length))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for weights in (None, "balanced"):
                load = os.getloadavg()[0]
                started = time.perf_counter()
                run = job.hyperparameters(seed=seed, class_weights=weights).fit(run_dir=f"{tmp}/{len(rows)}",
                                                                                 progress=False)
                rows.append({"seed": seed, "class_weights": weights or "none", "macro_f1": run.metrics["eval_f1"],
                             "accuracy": run.metrics["eval_accuracy"], **rare_class(run),
                             "train_seconds": round(run.metrics["train_runtime"], 1),
                             "fit_seconds": round(time.perf_counter() - started, 1), "load_before": round(load, 1)})
                print(f"seed {seed}, class_weights={weights}: macro F1 {rows[-1]['macro_f1']:.4f}", flush=True)
    info = machine()
    sizes = data.load()
    counts = {split: sizes[split].to_pandas()["label"].map(LABELS).value_counts().to_dict() for split in sizes}
    print(f"\n{args.example}, {args.ratio:g}:1 (train {counts['train']}, test {counts['test']}), MiniLM-L6 "
          f"({args.layers} layers), {args.epochs:g} epochs, batch 32, max_length {args.max_length}")
    print(f"machine: {info}")
    print(f"{'class_weights':<15}{'seed':>6}{'macro F1':>10}{'accuracy':>10}{'rare recall':>13}{'rare F1':>9}"
          f"{'train s':>9}{'load':>6}")
    for r in rows:
        print(f"{r['class_weights']:<15}{r['seed']:>6}{r['macro_f1']:>10.4f}{r['accuracy']:>10.4f}"
              f"{r['rare_recall']:>13.4f}{r['rare_f1']:>9.4f}{r['train_seconds']:>9.1f}{r['load_before']:>6.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "settings": vars(args), "counts": counts, "rows": rows}, indent=1)
                   + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
