"""Track a real local fine-tune with MLflow, then read the run back with MLflow's own client.

    python examples/track_with_mlflow.py [folder]      # the store and the run folder go under folder (default: .)

No account and no server: the default store is ./mlruns/mlflow.db (SQLite, artifacts beside it); look at it with
``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``. About a minute on 2 cores.
"""

import os
import sys

import sagefinetune as sft

folder = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(folder, exist_ok=True)
os.chdir(folder)

job = (
    sft.Job.from_dataset(sft.Dataset.example("bbc_news").sample(train=64, test=32, seed=1))
    .model("sentence-transformers/all-MiniLM-L6-v2", num_hidden_layers=2)   # a quick, smaller model
    .hyperparameters(epochs=2, batch_size=16, learning_rate=2e-4, max_length=64, logging_steps=1, save_steps=100_000)
    .track("mlflow", experiment="news")
)
print(job.plan())                     # the plan says where the run is tracked
run = job.fit(run_dir="sft-runs/tracked", progress=False)
print(run.tracking)                   # Tracking(uri='sqlite:///.../mlruns/mlflow.db', experiment='news', run_id='...')

from mlflow.tracking import MlflowClient  # noqa: E402

client = MlflowClient(run.tracking.uri)
logged = client.get_run(run.tracking.run_id)
print("params:", {k: logged.data.params[k] for k in ("epochs", "learning_rate", "instance", "data_fingerprint")})
print("loss by step:", [(m.step, round(m.value, 3)) for m in client.get_metric_history(run.tracking.run_id, "loss")])
print("eval_f1 by step:", [(m.step, round(m.value, 3))
                           for m in client.get_metric_history(run.tracking.run_id, "eval_f1")])
print("final eval_accuracy:", round(logged.data.metrics["eval_accuracy"], 3), "cost:", logged.data.metrics["cost_usd"])
print("artifacts:", sorted(a.path for a in client.list_artifacts(run.tracking.run_id)))
