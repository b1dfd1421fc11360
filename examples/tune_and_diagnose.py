"""Tune and diagnose: a SageMaker tuning notebook's workflow on bundled BBC News articles (5 topics), on this machine.

    python examples/tune_and_diagnose.py [folder]

Searches the learning rate, batch size and max length with Optuna (4 trials, 2 at once, the median pruner), then
reads the best trial's diagnosis and draws its curves and the study. The same call with instance="ml.g5.xlarge"
is a SageMaker tuning job; its plan and total cost are printed at the end, without an account. About a minute on
2 CPU cores: 240 articles, 2 epochs, and the first 2 of MiniLM's 6 layers, which learn the topics in that time at a
learning rate near 1e-3 and stay near chance at 1e-5 (the search has both to tell apart; the full model learns
more and takes about three times as long: drop ``num_hidden_layers=2``).
Run it again with the same folder: the finished study is read back, not run again.
"""

import sys
from pathlib import Path

import sagefinetune as sft

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "sft-runs/tune-and-diagnose")

job = (
    sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=240, test=100, seed=1))
    .model("sentence-transformers/all-MiniLM-L6-v2", num_hidden_layers=2)
    # save_total_limit=1: each trial keeps its latest checkpoint only (enough to resume it), not the last two
    .hyperparameters(epochs=2, batch_size=8, learning_rate=1e-4, max_length=48, save_total_limit=1)
)
space = {
    "learning_rate": sft.LogUniform(1e-5, 2e-3),
    "batch_size": sft.Choice([8, 16]),
    "max_length": sft.Choice([32, 48]),
}

tuned = job.tune(space, objective="eval_f1", trials=4, parallel=2, pruner="median", seed=4, run_dir=folder / "news-study")
print()
print(tuned.table[["trial", "state", "eval_f1", "learning_rate", "batch_size", "max_length", "epochs", "seconds"]]
      .to_string(index=False, float_format=lambda v: f"{v:.3g}"))
print(f"\nbest eval_f1 {tuned.best_value:.3f} with {dict(tuned.best_hyperparameters)}")

best = tuned.best_run
print(best.diagnose())  # what went wrong, if anything, read from the run's own curves
best.plot(folder / "best-curves.png")
tuned.plot(folder / "tuning.png")
print(f"curves: {folder / 'best-curves.png'}, study: {folder / 'tuning.png'}")

complete = tuned.table[tuned.table["state"] == "complete"]
worst = complete.sort_values("eval_f1").iloc[0]  # every trial's run can be read back and diagnosed
print(sft.TrainingRun.from_run_dir(worst["run_dir"]).diagnose())

# the same study as a SageMaker tuning job: planned, checked and costed here, not launched
print()
print(job.tune_plan(space, objective="eval_f1", trials=8, parallel=2, pruner="median", instance="ml.g5.xlarge",
                    spot=True, max_run="1h"))
print("\nnot launched: job.tune(..., instance='ml.g5.xlarge', spot=True) would create that tuning job.")
