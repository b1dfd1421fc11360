"""class_weights and early_stopping for real: tiny MiniLM fine-tunes on bundled BBC News through the entry point.

The early-stopping tests run on the installed transformers; the resumed one also on the V100 image's 4.56.2 where CI
names it (SFT_COMPAT_PYTHON): it stops early and keeps the best checkpoint there too, and what a checkpoint holds of
the callback is where the versions could differ.
"""

from __future__ import annotations

import json
import re
import warnings

import pandas as pd
import pytest
from conftest import MODEL, SAVE_ONCE, small_job

import sagefinetune as sft
from sagefinetune.backends.local import LocalBackend

pytestmark = pytest.mark.slow



def weights_of(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


# ---- class_weights ----------------------------------------------------------------------------------------------
def imbalanced_news(major: int = 96, minor: int = 8, test: int = 20) -> sft.Dataset:
    """BBC News' business and sports articles, business 12x sports in train (the test split balanced)."""
    dd = sft.Dataset.example("bbc_news").load()
    names = dd["train"].features["label"].names
    rows = dd["train"].to_pandas().assign(label=lambda f: [names[i] for i in f["label"]]).sample(frac=1, random_state=0)
    train = pd.concat([rows[rows.label == "business"].head(major), rows[rows.label == "sports"].head(minor)])
    rest = rows.drop(train.index)
    held_out = pd.concat([rest[rest.label == n].head(test) for n in ("business", "sports")])
    return sft.Dataset.from_pandas({"train": train, "test": held_out})


def held_out_rows() -> tuple[list[str], list[str]]:
    test = imbalanced_news().load()["test"]
    return list(test["text"]), list(test["label"])


def predicted_per_class(run) -> dict[str, int]:
    matrix = json.loads((run.run_dir / "output" / "data" / "confusion_matrix.json").read_text())
    return {name: sum(row[i] for row in matrix["matrix"]) for i, name in enumerate(matrix["labels"])}


def test_class_weights_make_a_model_trained_on_12_to_1_data_predict_the_rare_classes(tmp_path):
    base = (sft.Job.from_dataset(imbalanced_news()).model(MODEL, num_hidden_layers=2)  # one checkpoint each, at the end
            .hyperparameters(epochs=3, batch_size=16, learning_rate=2e-4, max_length=48, save_total_limit=1, **SAVE_ONCE))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = base.fit(run_dir=tmp_path / "plain", progress=False)
    assert any("(12.0:1, over 5:1)" in str(w.message) and "class_weights='balanced'" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        weighted = base.hyperparameters(class_weights="balanced").fit(run_dir=tmp_path / "weighted", progress=False)
    assert not any("imbalanced" in str(w.message) for w in caught)  # class_weights is the fix it would name

    log = weighted.log_path.read_text()
    # scikit-learn's balanced weights: 104 rows / (2 classes x 96) and / (2 x 8)
    assert "class weights of the cross-entropy (balanced, from the train split's counts): business 0.5417, " \
           "sports 6.5" in log
    assert "class weights" not in plain.log_path.read_text()
    # the same seed, data and steps: only the loss differs. Unweighted, the model learns the 12:1 prior and leans on
    # the majority class; weighted, both classes count alike: the rare class's scores rise, and so do its predictions
    sports = [t for t, y in zip(*held_out_rows()) if y == "sports"]
    mean_score = {}
    for name, run in (("plain", plain), ("weighted", weighted)):
        scores = run.predictor(batch_size=8).predict(sports, all_scores=True)
        mean_score[name] = sum(next(s["score"] for s in row if s["label"] == "sports") for row in scores) / len(sports)
    assert mean_score["weighted"] > mean_score["plain"] + 0.2, mean_score
    plain_counts, weighted_counts = predicted_per_class(plain), predicted_per_class(weighted)
    assert weighted_counts["sports"] >= plain_counts["sports"], (plain_counts, weighted_counts)
    assert weighted.metrics["eval_f1"] >= plain.metrics["eval_f1"], (plain.metrics, weighted.metrics)


# ---- early stopping ---------------------------------------------------------------------------------------------
def stopping_job(**hp):
    # 144 rows to train (16 carved for validation), 9 steps an epoch; patience 1 stops at the first evaluation
    # that is no better than the best. Two checkpoints kept: with save_total_limit=1 the Trainer deletes the last
    # one at the end when it is not the best, and the test compares the two
    return small_job(train=160, test=40, epochs=12, early_stopping=1, max_length=32, **{"save_total_limit": 2, **hp})


def test_early_stopping_stops_before_the_last_epoch_and_the_model_is_the_best_checkpoint(tmp_path):
    job = stopping_job()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = sft.TrainingRun.from_record(LocalBackend().fit(job, job.plan(), run_dir=tmp_path / "es", progress=False))
    assert any("set aside as one for early stopping" in str(w.message) for w in caught)
    log = run.log_path.read_text()
    assert "rows: train 144, validation 16, test 40" in log
    stopped = re.search(r"early stopping: stopped early at step (\d+) of 108; the model is checkpoint-(\d+), eval_f1 ",
                        log)
    assert stopped, log[-3000:]
    step, best = int(stopped[1]), int(stopped[2])
    assert run.metrics["train_global_step"] == step < 108 and best < step

    state = json.loads((tmp_path / "es" / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").read_text())
    scores = {e["step"]: e["eval_f1"] for e in state["log_history"] if "eval_f1" in e}
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best}")
    assert scores[best] == max(scores.values()) == state["best_metric"] and scores[step] <= scores[best]
    # the model written is the best checkpoint's, not the last step's
    model = weights_of(run.model_dir)
    assert same_weights(model, weights_of(tmp_path / "es" / "checkpoints" / f"checkpoint-{best}"))
    assert not same_weights(model, weights_of(tmp_path / "es" / "checkpoints" / f"checkpoint-{step}"))


def stop_after(step: int):
    """LocalBackend's on_line: stop the run (as a spot interruption would) once it trains past ``step``."""
    def on_line(_, line: str) -> str | None:
        m = re.search(r"\[sagefinetune\] progress step=(\d+)", line)
        return "interrupted for the test" if m and int(m[1]) > step else None
    return on_line


def test_a_resumed_run_keeps_the_patience_counter_and_best_score(tmp_path, python):
    job = small_job(train=160, test=40, epochs=4, early_stopping=2, save_steps=3, max_length=32)  # 36 steps
    run_dir = tmp_path / "spot"
    with pytest.raises(sft.TrainingError, match="interrupted for the test"):
        LocalBackend(python=python, on_line=stop_after(9)).fit(job, job.plan(), run_dir=run_dir, progress=False)
    checkpoint = run_dir / "checkpoints" / "checkpoint-9"
    state_file = checkpoint / "trainer_state.json"
    state = json.loads(state_file.read_text())
    # what the checkpoint holds: the callback's counter, consistent with the scores so far
    scores = [e["eval_f1"] for e in state["log_history"] if "eval_f1" in e]
    assert len(scores) == 3
    best, counter = None, 0
    for score in scores:  # EarlyStoppingCallback's rule: a strictly better score resets the count
        best, counter = (score, 0) if best is None or score > best else (best, counter + 1)
    saved = state["stateful_callbacks"]["EarlyStoppingCallback"]
    assert saved["args"]["early_stopping_patience"] == 2
    assert saved["attributes"]["early_stopping_patience_counter"] == counter
    assert state["best_metric"] == max(scores)

    # make the resumed run's outcome certain: one more evaluation without improvement is the second in a row, and no
    # score can beat 1.0. A run that lost the counter (0) would need two evaluations and stop 3 steps later
    saved["attributes"]["early_stopping_patience_counter"] = 1
    state.update(best_metric=1.0, best_global_step=9, best_model_checkpoint=str(checkpoint))
    state_file.write_text(json.dumps(state))
    assert checkpoint.name == sorted(run_dir.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name[11:]))[-1].name

    run = sft.TrainingRun.from_record(LocalBackend(python=python).fit(job, job.plan(), run_dir=run_dir, progress=False))
    log = run.log_path.read_text()
    assert f"resuming from {checkpoint}" in log
    assert "early stopping: stopped early at step 12 of 36; the model is checkpoint-9, eval_f1 1" in log, log[-3000:]
    assert run.metrics["train_global_step"] == 12
    assert same_weights(weights_of(run.model_dir), weights_of(checkpoint))
