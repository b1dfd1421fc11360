"""The pipeline's parts that need no training: the gate, the data check script, the local registry's bookkeeping."""

from __future__ import annotations

import json

import pytest

import sagefinetune as sft
from sagefinetune.entrypoint import check_data, evaluation
from sagefinetune.pipeline import Condition


# ---- the gate ------------------------------------------------------------------------------------------------------
def test_conditions_say_which_metric_missed_and_by_how_much():
    f1, loss = Condition.parse({"f1": 0.85, "eval_loss": 0.4})
    assert (f1.metric, f1.parameter, str(f1)) == ("eval_f1", "MinEvalF1", "eval_f1 >= 0.85")
    assert (loss.parameter, loss.relation) == ("MaxEvalLoss", "<=")
    metrics = {"eval_f1": 0.812, "eval_loss": 0.55}
    assert f1.check(metrics) == "eval_f1 = 0.812 is 0.038 below the threshold 0.85"
    assert loss.check(metrics) == "eval_loss = 0.55 is 0.15 above the threshold 0.4"
    assert f1.check(metrics, threshold=0.8) is None and loss.check({"eval_loss": 0.4}) is None
    assert "is not among the evaluation's metrics" in Condition("eval_mcc", 0.5).check(metrics)


def test_multi_label_jobs_gate_on_multi_label_metrics():
    assert Condition.parse({"f1_micro": 0.6}, "multi_label_classification")[0].parameter == "MinEvalF1Micro"
    with pytest.raises(sft.ConfigError, match="the evaluation step of a multi-label job reports eval_f1_micro"):
        Condition.parse({"eval_accuracy": 0.6}, "multi_label_classification")


# ---- check_data.py: what the CheckData step runs inside AWS ----------------------------------------------------------
def write_channel(root, split, rows):
    folder = root / split
    folder.mkdir(parents=True)
    (folder / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


ARGS = ["--labels", '["negative","positive"]', "--label_mapping", '{"1":"negative","5":"positive"}',
        "--text_column", "body", "--label_column", "stars"]


def test_check_data_counts_rows_per_class(tmp_path):
    write_channel(tmp_path, "train", [{"body": "great", "stars": 5}, {"body": "awful", "stars": 1},
                                      {"body": "fine", "stars": 5}])
    write_channel(tmp_path, "test", [{"body": "meh", "stars": 1}])
    report = check_data.main(["--data_dir", str(tmp_path), *ARGS])
    assert report == {"train": {"positive": 2, "negative": 1}, "test": {"negative": 1}}


@pytest.mark.parametrize("rows, message", [
    ([{"body": "great", "stars": 5}, {"body": "odd", "stars": 3}, {"body": "odd", "stars": 3}],
     "label values the label map does not cover: 3 \\(2 rows\\)"),
    ([{"body": "great", "stars": 5}, {"body": " ", "stars": 1}], "1 row\\(s\\) with an empty 'body'"),
    ([{"review": "great", "stars": 5}], "has no column 'body'"),
    ([{"body": "great", "stars": 5}], "classes \\['negative'\\] have no rows in the train channel"),
])
def test_check_data_stops_on_what_would_spoil_training(tmp_path, rows, message):
    write_channel(tmp_path, "train", rows)
    with pytest.raises(SystemExit, match=message):
        check_data.main(["--data_dir", str(tmp_path), *ARGS])


def test_evaluation_script_refuses_unknown_arguments():
    with pytest.raises(SystemExit, match="unknown argument\\(s\\) \\['epochs'\\]"):
        evaluation.parse_args(["--model_dir", "m", "--epochs", "3"])
    paths, hp = evaluation.parse_args(["--test_dir", "t", "--label_column", "stars"])
    assert paths["test_dir"] == "t" and paths["model_dir"] == "/opt/ml/processing/model" and hp["label_column"] == "stars"


# ---- the local registry's bookkeeping ----------------------------------------------------------------------------
@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"id2label": {"0": "a", "1": "b"}}')
    return folder


def test_versions_are_numbered_in_order_and_keep_their_own_copy(tmp_path, model_dir):
    registry = sft.Registry("news-models", path=tmp_path / "reg")
    assert registry.versions() == [] and registry.table().empty
    with pytest.raises(sft.ConfigError, match="has no versions .*Fix: run the pipeline first"):
        registry.get()
    first = registry.register(model_dir, metrics={"eval_f1": 0.9}, labels=["a", "b"], source={"run": "r1"})
    (tmp_path / "reg" / "news-models" / "v2").mkdir()  # a number taken by another process registering at the same time
    third = registry.register(model_dir, metrics={"eval_f1": 0.95}, labels=["a", "b"], status="Approved")
    assert (first.version, third.version) == (1, 3)
    (model_dir / "config.json").write_text("{}")  # the run folder changes later: the registered copy does not
    assert json.loads((tmp_path / "reg" / "news-models" / "v1" / "model" / "config.json").read_text())["id2label"]
    assert [v.version for v in registry.versions()] == [1, 3] and registry.get("approved").version == 3
    assert registry.reject(1).status == "Rejected" and registry.get(1).source == {"run": "r1"}


def test_registry_inputs_are_checked(tmp_path):
    with pytest.raises(sft.ConfigError, match="model group 'a/b' must be 1-63 letters"):
        sft.Registry("a/b")
    with pytest.raises(sft.ConfigError, match="backend='s3'"):
        sft.Registry("news", backend="s3")
    registry = sft.Registry("news", path=tmp_path)
    with pytest.raises(sft.ConfigError, match="is not a model folder"):
        registry.register(tmp_path, metrics={}, labels=[])
    with pytest.raises(sft.ConfigError, match="approval status 'ok' is not one of"):
        registry.register(tmp_path, metrics={}, labels=[], status="ok")


@pytest.mark.parametrize("module", ["sagefinetune.pipeline.conditions", "sagefinetune.registry"])
def test_docstring_examples(module, tmp_path):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), extraglobs={"tmp": tmp_path})
    assert result.attempted > 0 and result.failed == 0
