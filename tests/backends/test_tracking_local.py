"""job.track("mlflow"): a real local fine-tune, read back with MLflow's own client."""

import json

import pytest
from conftest import SAVE_ONCE, small_job

import sagefinetune as sft


@pytest.mark.slow
def test_a_tracked_local_run_logs_params_curves_metrics_cost_and_artifacts(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default store: ./mlruns/mlflow.db
    job = small_job(train=64, test=32, epochs=2, logging_steps=1, **SAVE_ONCE).track("mlflow", experiment="reviews")
    run = job.fit(run_dir=tmp_path / "run", progress=False)

    uri = f"sqlite:///{tmp_path.resolve().as_posix()}/mlruns/mlflow.db"
    assert run.tracking == sft.Tracking(uri, "reviews", run.tracking.run_id)
    client = MlflowClient(uri)
    got = client.get_run(run.tracking.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "run"
    assert client.get_experiment(got.info.experiment_id).name == "reviews"

    params = got.data.params
    assert params["epochs"] == "2.0" and params["batch_size"] == "16" and params["learning_rate"] == "0.0002"
    assert params["model"] == "sentence-transformers/all-MiniLM-L6-v2" and params["instance"] == "local"
    assert params["nodes"] == "1" and len(params["data_fingerprint"]) >= 10
    assert json.loads(params["labels"]) == ["business", "entertainment", "politics", "sports", "tech"]

    losses = client.get_metric_history(run.tracking.run_id, "loss")
    assert [m.step for m in losses] == list(range(1, 9))  # logging_steps=1: every step of 2 epochs x 4 batches
    evals = client.get_metric_history(run.tracking.run_id, "eval_accuracy")
    assert [m.step for m in evals][:2] == [4, 8] and len(evals) == 3  # each epoch, then the final evaluation
    final = got.data.metrics
    assert final["eval_accuracy"] == pytest.approx(run.metrics["eval_accuracy"])
    assert final["train_runtime"] == pytest.approx(run.metrics["train_runtime"])
    assert final["cost_usd"] == 0.0 and got.data.params["cost_source"] == "local run: no charge"

    artifacts = {a.path for a in client.list_artifacts(run.tracking.run_id)}
    assert {"confusion_matrix.png", "confusion_matrix.json", "classification_report.json", "model_card"} <= artifacts
    card = client.download_artifacts(run.tracking.run_id, "model_card/README.md", str(tmp_path / "dl"))
    assert "confusion_matrix.png" in open(card).read()
    png = client.download_artifacts(run.tracking.run_id, "confusion_matrix.png", str(tmp_path / "dl"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    record = json.loads((tmp_path / "run" / "output" / "data" / "tracking.json").read_text())
    assert record == run.tracking.to_dict()
