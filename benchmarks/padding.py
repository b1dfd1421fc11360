"""Our fit() against the old notebook recipe, on the same data, model, epochs and batch size.

    python benchmarks/padding.py [--example rotten_tomatoes] [--train 400] [--test 200] [--epochs 1]

The notebook recipe pads every text to the model's maximum (512 tokens), in fp32, with batches in random order.
sagefinetune truncates at max_length (256), pads each batch only to its longest text, groups texts of similar
length into batches, and trains in bf16 where the device computes it (GPUs from Ampere on, and CPUs with AVX512-BF16
or AMX, such as this machine's kind; precision="auto"). Both run through the same entry point at the same learning
rate; the script prints both times, the ratio and both accuracies.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import sagefinetune as sft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default="rotten_tomatoes", choices=["rotten_tomatoes", "imdb", "bbc_news"])
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    base = sft.Job.from_dataset(
        sft.Dataset.example(args.example).sample(train=args.train, test=args.test, seed=42)
    ).hyperparameters(epochs=args.epochs, batch_size=args.batch_size, learning_rate=5e-5, seed=42)
    recipes = {
        "sagefinetune fit()": base,  # dynamic padding, max_length 256, length-grouped batches, precision auto
        "notebook recipe": base.hyperparameters(max_length=512, pad_to_max_length=True, group_by_length=False,
                                                precision="fp32"),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, job in recipes.items():
            started = time.perf_counter()
            run = job.fit(run_dir=f"{tmp}/{len(results)}", progress=False)
            results[name] = (time.perf_counter() - started, run.metrics["train_runtime"], run.metrics["eval_accuracy"])
            print(f"{name}: done", flush=True)

    print(f"\n{args.example}: {args.train} train / {args.test} test rows, {args.epochs:g} epoch(s), batch {args.batch_size}")
    print(f"{'recipe':<22}{'fit() s':>10}{'train s':>10}{'accuracy':>10}")
    for name, (wall, train_s, acc) in results.items():
        print(f"{name:<22}{wall:>10.1f}{train_s:>10.1f}{acc:>10.3f}")
    ours, theirs = results["sagefinetune fit()"], results["notebook recipe"]
    print(f"training is {theirs[1] / ours[1]:.1f}x faster with sagefinetune ({theirs[0] / ours[0]:.1f}x for the whole fit); "
          f"accuracy {ours[2]:.3f} vs {theirs[2]:.3f}")


if __name__ == "__main__":
    main()
