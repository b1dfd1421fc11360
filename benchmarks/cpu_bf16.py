"""bf16 against fp32 for training on a CPU: the speed of a training step, and the accuracy of whole runs.

    python benchmarks/cpu_bf16.py [--steps 12] [--fits] [--train 2000] [--test 500]

1. Steps: MiniLM-L6 training steps (forward, backward, AdamW; batch 32 of 48 tokens, the threads torch uses),
   fp32 and bf16 autocast in turns, so a machine that gets busier slows both alike. Prints the median of each.
2. With --fits: the quickstart's job (Rotten Tomatoes, 1 epoch, max_length 128) fitted with precision="fp32" and
   precision="bf16", through the entry point, and on BBC News (5 classes); prints training time and accuracy.
On a CPU without bf16 instructions (no avx512_bf16 / amx_bf16), bf16 is emulated and slower: ``precision="auto"``
then keeps fp32 (see sagefinetune/entrypoint/hardware.py).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import sagefinetune as sft


def step_times(steps: int, batch: int = 32, tokens: int = 48) -> dict[str, float]:
    import torch
    from transformers import AutoModelForSequenceClassification

    from sagefinetune.entrypoint.training import resolve_model

    path = resolve_model("sentence-transformers/all-MiniLM-L6-v2", None)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(1000, 20000, (batch, tokens))
    labels = torch.randint(0, 2, (batch,))
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def step(precision: str) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    for precision in times:  # warm-up
        step(precision)
    for _ in range(steps):
        for precision in times:
            times[precision].append(step(precision))
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def fits(train: int, test: int) -> list[tuple[str, str, float, float]]:
    jobs = {
        "rotten_tomatoes": sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes").sample(train=train, test=test,
                                                                                               seed=42))
        .map_labels({0: "negative", 1: "positive"}).hyperparameters(epochs=1, batch_size=32, max_length=128),
        "bbc_news": sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=1000, test=400, seed=1))
        .hyperparameters(epochs=1, batch_size=32, max_length=128),
    }
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for data, job in jobs.items():
            for precision in ("fp32", "bf16"):
                run = job.hyperparameters(precision=precision).fit(run_dir=f"{tmp}/{data}-{precision}", progress=False)
                out.append((data, precision, run.metrics["train_runtime"], run.metrics["eval_accuracy"]))
                print(f"{data} {precision}: done", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--fits", action="store_true", help="also fit whole jobs in fp32 and bf16")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    args = parser.parse_args()

    import torch

    from sagefinetune.entrypoint import hardware

    machine = hardware.detect()
    print(f"{machine.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    ms = step_times(args.steps)
    print(f"MiniLM-L6 training step, batch 32 x 48 tokens: fp32 {ms['fp32']:.0f} ms, bf16 {ms['bf16']:.0f} ms "
          f"({ms['fp32'] / ms['bf16']:.2f}x)")
    if args.fits:
        results = fits(args.train, args.test)
        print(f"\n{'data':<18}{'precision':<11}{'train s':>9}{'accuracy':>10}")
        for data, precision, seconds, accuracy in results:
            print(f"{data:<18}{precision:<11}{seconds:>9.1f}{accuracy:>10.4f}")


if __name__ == "__main__":
    main()
