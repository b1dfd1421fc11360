"""Real fine-tunes of MiniLM on bundled BBC News, through the same entry point SageMaker runs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import MODEL, SAVE_ONCE, small_job

import sagefinetune as sft

pytestmark = pytest.mark.slow


def test_fine_tune_learns_well_above_chance(trained_run):
    # 5 balanced classes: chance is 0.2
    assert trained_run.metrics["eval_accuracy"] > 0.7
    assert trained_run.metrics["eval_f1"] > 0.65
    for key in ("eval_precision", "eval_recall", "eval_mcc", "eval_loss", "train_loss"):
        assert key in trained_run.metrics
    assert trained_run.metrics["train_global_step"] == 75  # 400 rows / 16 x 3 epochs
    assert trained_run.cost.usd == 0


def test_model_dir_has_named_labels_and_no_checkpoints(trained_run):
    model_dir = trained_run.model_dir
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "sagefinetune.json"} <= names
    assert not any(n.startswith("checkpoint") for n in names)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "business", "1": "entertainment", "2": "politics", "3": "sports", "4": "tech"}
    assert config["problem_type"] == "single_label_classification"
    assert json.loads((model_dir / "metrics.json").read_text()) == trained_run.metrics


def test_reports_go_to_the_output_dir_not_the_metrics(trained_run):
    out = trained_run.run_dir / "output" / "data"
    report = json.loads((out / "classification_report.json").read_text())
    matrix = json.loads((out / "confusion_matrix.json").read_text())
    assert set(report) >= {"business", "tech", "macro avg"}
    assert len(matrix["matrix"]) == 5 and sum(map(sum, matrix["matrix"])) == 200
    assert not any(k.startswith("eval_business") for k in trained_run.metrics)


def test_checkpoints_are_kept_in_the_checkpoint_dir_with_a_limit(trained_run):
    checkpoints = sorted(p.name for p in (trained_run.run_dir / "checkpoints").iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-75"]  # small_job's save_total_limit=1 of 3 epoch checkpoints


def test_log_reports_training_loss_and_metric_lines(trained_run):
    log = trained_run.log_path.read_text()
    assert log.count("[sagefinetune] metric name=loss ") >= 10
    assert "[sagefinetune] metric name=eval_accuracy value=" in log
    assert "max_length 64" in log


def test_predictions_carry_label_names(trained_run):
    predictor = trained_run.predictor(batch_size=8)
    test = sft.Dataset.example("bbc_news").sample(train=400, test=200, seed=1).load()["test"].select(range(60))
    names = test.features["label"].names
    out = predictor.predict(list(test["text"]) + ["word " * 2000])  # the long one is truncated, not an error
    assert {p["label"] for p in out} <= set(names) and all(0 < p["score"] <= 1 for p in out)
    agree = sum(p["label"] == names[y] for p, y in zip(out, test["label"])) / len(test)
    assert agree > 0.7  # the same model as eval_accuracy, through the predictor
    assert predictor.predict(["The striker scored twice as the club won the cup final."])[0]["label"] == "sports"
    every = predictor.predict("a new mobile phone software release", all_scores=True)[0]
    assert len(every) == 5 and abs(sum(s["score"] for s in every) - 1) < 1e-4


def test_label_errors_stop_before_training(tmp_path):
    job = small_job().map_labels({0: "business", 1: "entertainment", 2: "politics"})
    with pytest.raises(sft.LabelError) as err:
        job.fit(run_dir=tmp_path / "r", progress=False)
    assert "3 (" in str(err.value) and "4 (" in str(err.value)
    assert not (tmp_path / "r" / "checkpoints").exists() and not (tmp_path / "r" / "train.log").exists()


def test_a_failing_script_raises_with_the_log(tmp_path):
    from sagefinetune.facts.models import local_path

    broken = tmp_path / "broken"  # config, tokenizer and a weights file pass every check here; the weights are garbage
    shutil.copytree(local_path(MODEL), broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    job = small_job(train=40, test=20, epochs=1).model(str(broken))
    with pytest.raises(sft.TrainingError) as err:
        job.fit(run_dir=tmp_path / "r", progress=False)
    assert err.value.log_path and os.path.exists(err.value.log_path) and "exit code" in str(err.value)


def test_interrupted_run_resumes_from_its_checkpoint_with_the_same_steps(tmp_path, trained_run):
    run_dir = tmp_path / "resumable"
    code = (
        "import signal, sys; sys.path.insert(0, %r)\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises, even under a parent that ignores it\n"
        "from conftest import small_job\n"
        "small_job(save_steps=10).fit(run_dir=%r, progress=False)\n"
    ) % (os.path.dirname(os.path.dirname(__file__)), str(run_dir))
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.time() + 240
    checkpoints = run_dir / "checkpoints"
    while time.time() < deadline and not (checkpoints.exists() and any(p.name == "checkpoint-20" for p in checkpoints.iterdir())):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C in the user's shell
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not (run_dir / "model" / "metrics.json").exists()

    run = small_job(save_steps=10).fit(run_dir=run_dir, progress=False)
    log = run.log_path.read_text()
    # the same data and tokenizer settings as trained_run's: neither this run nor its resumption tokenised again
    assert log.count("tokenised data reused from") == 2 and "tokenised in" not in log
    resumed_from = int(log.split("resuming from ")[1].split("checkpoint-")[1].split()[0])
    # checkpoint-20 was being written when the signal came, or had just been: either it or checkpoint-10 is resumed
    assert resumed_from >= 10 and resumed_from % 10 == 0
    assert run.metrics["train_global_step"] == 75  # the same number of steps as an uninterrupted run
    second = log.split("resuming from ")[1]
    first_step = int(second.split("[sagefinetune] progress step=")[1].split()[0])
    assert first_step > resumed_from  # the steps before the checkpoint were not trained again
    # the same seed, data order, optimizer and scheduler state: it ends where the uninterrupted run ended. Measured on
    # a 2-vCPU Xeon: eval_accuracy, eval_f1 and eval_loss were identical to the last digit (0.895, 0.8931, 0.54720);
    # the bound below leaves room for float reductions only. train_loss is not compared: it averages the steps this
    # process trained (0.961 after resuming vs 1.047 over all 75 steps).
    for key in ("eval_accuracy", "eval_f1"):
        assert run.metrics[key] == trained_run.metrics[key], key
    assert run.metrics["eval_loss"] == pytest.approx(trained_run.metrics["eval_loss"], rel=1e-4)


def test_multi_label_with_a_threshold_chosen_on_validation(tmp_path):
    import pandas as pd

    dd = sft.Dataset.example("bbc_news").sample(train=500, test=200, seed=2).load()
    names = dd["train"].features["label"].names

    def frame(part):
        labels = []
        for text, y in zip(part["text"], part["label"]):
            row = [names[y]]
            if any(w in text.lower() for w in ("government", "minister", "tax")):
                row.append("policy")
            labels.append(row)
        return pd.DataFrame({"text": part["text"], "labels": labels})

    data = sft.Dataset.from_pandas({"train": frame(dd["train"]), "test": frame(dd["test"])}).columns(label="labels")
    job = (sft.Job.from_dataset(data).map_labels(sft.LabelMap.multi_label(names + ["policy"]))
           .model("sentence-transformers/all-MiniLM-L6-v2", num_hidden_layers=2)
           .hyperparameters(epochs=4, batch_size=16, learning_rate=3e-4, max_length=64, save_total_limit=1, **SAVE_ONCE))
    run = job.fit(run_dir=tmp_path / "multi", progress=False)
    assert run.metrics["eval_f1_micro"] > 0.6 and "eval_f1_macro" in run.metrics
    threshold = run.metrics["eval_threshold"]
    assert 0 < threshold < 1
    settings = json.loads((run.model_dir / "sagefinetune.json").read_text())
    assert settings["threshold"] == threshold and settings["problem_type"] == "multi_label_classification"
    report = json.loads((run.run_dir / "output" / "data" / "classification_report.json").read_text())
    assert "policy" in report
    predicted = run.predictor().predict(["The minister announced a new tax on banks and the government defended it."])[0]
    assert {"politics", "policy"} & {p["label"] for p in predicted}


def test_a_run_folder_only_resumes_the_job_that_made_it(trained_run):
    with pytest.raises(sft.ConfigError, match="different job \\(changed: learning_rate\\)"):
        small_job(learning_rate=1e-4).fit(run_dir=trained_run.run_dir, progress=False)
    with pytest.raises(sft.ConfigError, match="changed: the data"):
        small_job(train=300).fit(run_dir=trained_run.run_dir, progress=False)


def pair_rows(firsts: list[str]):
    """Each first text twice, once with a favourable and once with an unfavourable second text: the label is carried
    by the second text alone, so a model that drops it cannot beat 0.5."""
    import pandas as pd

    good = ["they loved it", "it was a great success", "a wonderful result", "everyone was delighted",
            "it worked perfectly", "the best outcome anyone hoped for"]
    bad = ["they hated it", "it was a complete failure", "a dreadful result", "everyone was furious",
           "it broke down at once", "the worst outcome anyone feared"]
    rows = []
    for i, first in enumerate(firsts):
        rows.append({"premise": first, "reply": good[i % len(good)], "verdict": 1})
        rows.append({"premise": first, "reply": bad[(i + 1) % len(bad)], "verdict": 0})
    return pd.DataFrame(rows)


def test_sentence_pairs_train_predict_and_serve_with_the_second_text(tmp_path):
    import pandas as pd

    texts = sft.Dataset.example("bbc_news").sample(train=80, test=30, seed=3).load()
    firsts = {split: [" ".join(t.split()[:8]) for t in texts[split]["text"]] for split in ("train", "test")}
    train, test = pair_rows(firsts["train"]), pair_rows(firsts["test"])
    # the first text alone says nothing: every one of them comes once with each label
    assert (test.groupby("premise")["verdict"].mean() == 0.5).all()
    data = sft.Dataset.from_pandas({"train": train, "test": test}).columns(text="premise", text_pair="reply",
                                                                          label="verdict")
    job = (sft.Job.from_dataset(data).map_labels({0: "unfavourable", 1: "favourable"})
           .model(MODEL, num_hidden_layers=2)
           .hyperparameters(epochs=6, batch_size=16, learning_rate=1e-3, max_length=48, save_total_limit=1, **SAVE_ONCE))
    run = job.fit(run_dir=tmp_path / "pairs", progress=False)
    assert json.loads((run.model_dir / "sagefinetune.json").read_text())["text_pair"] is True
    assert run.metrics["eval_accuracy"] >= 0.9, run.metrics  # 0.5 for a model that reads only the first text

    first = "Shares in the carmaker moved after the annual results were published on Monday"
    pairs = [(first, "they loved it"), (first, "it was a complete failure")]
    expected = ["favourable", "unfavourable"]
    assert [p["label"] for p in run.predictor().predict(pairs)] == expected
    with run.deploy() as ep:  # the local endpoint: pairs over HTTP, the same answers
        served = ep.predict(pairs)
    assert [p["label"] for p in served] == expected
    assert pd.Series([p["score"] for p in served]).between(0.5, 1).all()
