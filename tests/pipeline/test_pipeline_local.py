"""``pipeline.run_local()`` for real: one small fine-tune of MiniLM on BBC News, then the pipeline's other steps.

The module trains once. Its first run is interrupted after training (in the evaluation step) and continued; later runs
reuse the training through the step cache; a run with a threshold out of reach registers nothing.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import SAVE_ONCE, small_job
from pipeline_defs import needs

import sagefinetune as sft
from sagefinetune.pipeline import local

pytestmark = pytest.mark.slow


def news_job():
    """A pipeline-sized fine-tune: 160 BBC News rows, 2 epochs of 20 steps on 48 tokens (about a fifth of
    conftest.small_job's tokens); it learns the five topics at 8e-4 (tests/tuning/test_tune.py's tiny_job)."""
    return small_job(train=160, test=80, epochs=2, batch_size=8, learning_rate=8e-4, max_length=48, **SAVE_ONCE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder, registry = tmp_path_factory.mktemp("pipelines"), tmp_path_factory.mktemp("registry")
    pipe = news_job().pipeline("news", condition={"eval_f1": 0.5}, register="news-models")
    out: dict = {"folder": folder, "registry": registry, "pipe": pipe}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(local, "_evaluate", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pipe.run_local(folder, registry=registry, progress=False)
    (first,) = [p.parent for p in folder.glob("*/run.json")]
    out["interrupted"] = json.loads((first / "run.json").read_text())
    train_log = next(first.glob("train-*/train.log"))
    out["log_before"] = train_log.read_text()
    out["continued"] = pipe.run_local(folder, registry=registry, progress=False)
    out["log_after"] = train_log.read_text()
    out["second"] = pipe.run_local(folder, registry=registry, progress=False)
    with pytest.raises(sft.PipelineError) as err:
        pipe.run_local(folder, registry=registry, parameters={"MinEvalF1": 0.999}, progress=False)
    out["missed"] = err.value
    yield out
    for made in (folder, registry):  # a module's folder lives until the session ends: not these
        shutil.rmtree(made, ignore_errors=True)


def test_an_interrupted_run_continues_without_training_again(runs):
    interrupted, continued = runs["interrupted"], runs["continued"]
    assert interrupted["status"] == "Interrupted"
    assert interrupted["steps"]["train"]["status"] == "Succeeded" and interrupted["steps"]["evaluate"]["status"] == "Running"
    assert continued.run_id == interrupted["run_id"]  # the same run, continued
    assert continued.steps["train"] == interrupted["steps"]["train"]  # recorded once, not run again
    assert runs["log_after"] == runs["log_before"]
    assert continued.status == "Succeeded" and continued.steps["evaluate"]["status"] == "Succeeded"


def test_condition_met_registers_version_1_then_version_2(runs):
    continued, second = runs["continued"], runs["second"]
    assert continued.version.version == 1 and second.version.version == 2
    assert continued.version.status == "PendingManualApproval"
    assert second.run_id != continued.run_id
    assert second.steps["train"]["reused_from"] == continued.run_id  # same inputs: the step cache
    assert second.steps["evaluate"]["reused_from"] == continued.run_id
    registry = sft.Registry("news-models", path=runs["registry"])
    versions = registry.versions()
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].metrics == continued.metrics and versions[0].labels[3] == "sports"
    assert versions[0].source["run"] == continued.run_id and (runs["registry"] / "news-models" / "v2" / "model").is_dir()


def test_condition_missed_registers_nothing_and_says_by_how_much(runs):
    err, f1 = runs["missed"], runs["second"].metrics["eval_f1"]
    assert err.step == "condition" and err.run.status == "Failed" and err.run.version is None
    assert f"eval_f1 = {f1:.4g} is {0.999 - f1:.3g} below the threshold 0.999" in str(err)
    assert "Nothing was registered" in str(err) and "Fix:" in str(err)
    assert [v.version for v in sft.Registry("news-models", path=runs["registry"]).versions()] == [1, 2]


def test_the_evaluation_step_scores_like_training_did(runs):
    run = runs["continued"]
    training = run.steps["train"]["outputs"]["training_metrics"]
    for key in ("eval_accuracy", "eval_f1", "eval_precision", "eval_recall"):
        assert run.metrics[key] == pytest.approx(training[key], abs=1e-9), key
    assert run.metrics["eval_accuracy"] > 0.7  # 5 classes: chance is 0.2
    folder = run.steps["evaluate"]["outputs"]["folder"]
    report = json.loads(open(f"{folder}/evaluation.json").read())
    assert report["rows"] == 80 and report["labels"][0] == "business"
    assert json.loads(open(f"{folder}/confusion_matrix.json").read())["labels"] == report["labels"]


def test_registry_approves_and_lists(runs, tmp_path):
    registry = sft.Registry("news-models", path=runs["registry"])
    approved = registry.approve(1, note="looked at the confusion matrix")
    assert approved.status == "Approved" and registry.get("approved").version == 1
    record = json.loads((runs["registry"] / "news-models" / "v1" / "version.json").read_text())
    assert [h["status"] for h in record["history"]] == ["PendingManualApproval", "Approved"]
    table = registry.table()
    assert table["version"].tolist() == [1, 2] and table["status"].tolist() == ["Approved", "PendingManualApproval"]
    with pytest.raises(sft.ConfigError, match="is PendingManualApproval, not Approved"):
        registry.deploy(2)


def test_registry_deploys_a_version_locally(runs):
    needs("sagefinetune.serving", "local endpoints (issue 7) are not merged into this branch yet")
    registry = sft.Registry("news-models", path=runs["registry"])
    registry.approve(1)
    with registry.deploy(1) as endpoint:
        prediction = endpoint.predict(["The striker scored twice in the cup final."])[0]
    assert prediction["label"] == "sports"


def test_an_approved_run_deploys_a_local_endpoint(runs):
    needs("sagefinetune.serving", "local endpoints (issue 7) are not merged into this branch yet")
    pipe = news_job().pipeline("news", condition={"eval_f1": 0.5}, register="news-models",
                               deploy={"instance": "local"})
    run = pipe.run_local(runs["folder"], registry=runs["registry"], parameters={"ModelApprovalStatus": "Approved"},
                         progress=False)
    try:
        assert run.version.status == "Approved" and run.steps["deploy"]["status"] == "Succeeded"
        assert run.endpoint.predict(["Shares fell as the bank cut its profit forecast."])[0]["label"] == "business"
    finally:
        run.endpoint.delete()


def test_the_evaluation_script_runs_on_the_v100_images_transformers(runs, tmp_path):
    """The Evaluate step runs on the training image's stack: transformers 4.56.2 on the V100 image (CI's venv)."""
    import subprocess

    from conftest import env_python

    from sagefinetune.entrypoint import evaluation

    compat = env_python("SFT_COMPAT_PYTHON")
    train = runs["continued"].steps["train"]["outputs"]
    subprocess.run([compat, evaluation.__file__, "--model_dir", train["model_dir"], "--test_dir", train["test_dir"],
                    "--output_dir", str(tmp_path)], check=True, capture_output=True, text=True)
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["metrics"]["eval_f1"] == pytest.approx(runs["continued"].metrics["eval_f1"], abs=1e-6)
