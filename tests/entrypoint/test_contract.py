"""The entry point's contract with SageMaker: hyperparameters, paths, metric lines (no torch needed)."""

import json
import re

import pytest

from sagefinetune.entrypoint import channels, checkpoints, contract, outputs, training
from sagefinetune.plans.training import metric_definitions


@pytest.mark.parametrize("raw, expected", [("true", True), ("True", True), ("1", True), ("false", False),
                                           ("False", False), ("0", False), (True, True)])
def test_booleans_parse_as_sagemaker_sends_them(raw, expected):
    assert contract.parse_hyperparameters({"group_by_length": raw})["group_by_length"] is expected


def test_bad_boolean_is_an_error_not_true():
    with pytest.raises(ValueError, match="group_by_length"):
        contract.parse_hyperparameters({"group_by_length": "maybe"})


@pytest.mark.parametrize("raw, expected", [("2e-05", 2e-05), ("5E-5", 5e-05), ("0.0001", 1e-4), (3e-5, 3e-5)])
def test_floats_with_exponents(raw, expected):
    assert contract.parse_hyperparameters({"learning_rate": raw})["learning_rate"] == expected


def test_ints_accept_integral_floats_only():
    assert contract.parse_hyperparameters({"batch_size": "16.0"})["batch_size"] == 16
    with pytest.raises(ValueError, match="batch_size"):
        contract.parse_hyperparameters({"batch_size": "16.5"})


def test_ranges_and_unknown_names():
    with pytest.raises(ValueError, match=r"must be in \(0, 10000\]"):
        contract.parse_hyperparameters({"epochs": "0"})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        contract.parse_hyperparameters({"epochz": "1"})


def test_argv_env_and_config_file_merge(tmp_path, monkeypatch):
    (tmp_path / "hyperparameters.json").write_text(json.dumps({"epochs": "1", "seed": "7", "labels": '["a","b"]'}))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("SM_HPS", json.dumps({"seed": "8"}))
    raw = contract.read_raw_hyperparameters(["--epochs", "2", "--max-length=64", "--model_name_or_path", '"m"'])
    hp = contract.parse_hyperparameters(raw)
    assert hp["epochs"] == 2.0 and hp["seed"] == 8 and hp["max_length"] == 64
    assert hp["labels"] == ["a", "b"] and hp["model_name_or_path"] == "m"


def test_rendered_values_parse_back_exactly():
    values = {"learning_rate": 2.4e-05, "group_by_length": False, "labels": ["neg", "pos"], "epochs": 3}
    rendered = {k: contract.render_hyperparameter(v) for k, v in values.items()}
    assert rendered == {"learning_rate": "2.4e-05", "group_by_length": "false", "labels": '["neg","pos"]', "epochs": "3"}
    parsed = contract.parse_hyperparameters(rendered)
    assert parsed["learning_rate"] == 2.4e-05 and parsed["group_by_length"] is False and parsed["labels"] == ["neg", "pos"]


def test_paths_follow_sagemaker_variables(tmp_path, monkeypatch):
    (tmp_path / "train").mkdir()
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train"))
    monkeypatch.setenv("SM_MODEL_DIR", "/x/model")
    monkeypatch.setenv("SM_NUM_GPUS", "8")
    monkeypatch.delenv("SFT_CHECKPOINT_DIR", raising=False)
    p = contract.paths()
    assert p.channels == {"train": str(tmp_path / "train")} and p.model_dir == "/x/model"
    assert p.checkpoint_dir == "/opt/ml/checkpoints" and p.num_gpus == 8


@pytest.mark.parametrize("value", [2.4e-05, 0.955, 1e-10, 12.0, 3.0e21, -0.5])
def test_metric_definition_regex_reads_the_exact_value(value):
    line = contract.metric_line("learning_rate", value, step=10, epoch=1.5)
    regex = next(m.regex for m in metric_definitions() if m.name == "learning_rate")
    match = re.search(regex, "2026-11-21 12:00:00 " + line)
    assert match and float(match.group(1)) == value


def test_metric_regex_does_not_confuse_loss_with_eval_loss():
    regex = next(m.regex for m in metric_definitions() if m.name == "loss")
    assert re.search(regex, contract.metric_line("eval_loss", 0.3, 1, 1.0)) is None
    assert float(re.search(regex, contract.metric_line("loss", 0.7, 1, 1.0)).group(1)) == 0.7


def test_training_arguments_for_transformers_4_56_and_5():
    v4 = {"warmup_ratio", "warmup_steps", "group_by_length"}
    v5 = {"warmup_steps", "train_sampling_strategy"}
    assert training.trainer_kwargs_for_version(v4, warmup=0.1, group_by_length=True) == {
        "warmup_ratio": 0.1, "group_by_length": True}
    assert training.trainer_kwargs_for_version(v5, warmup=0.1, group_by_length=True) == {
        "warmup_steps": 0.1, "train_sampling_strategy": "group_by_length"}
    assert training.trainer_kwargs_for_version(v5, warmup=0.0, group_by_length=False) == {"warmup_steps": 0.0}


def test_installed_transformers_has_the_fields_we_use():
    import dataclasses

    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs = training.trainer_kwargs_for_version(fields, warmup=0.1, group_by_length=True)
    assert set(kwargs) <= fields and len(kwargs) == 2


def test_logging_steps_make_short_runs_report_loss():
    assert training.logging_steps(10, 0) == 1
    assert training.logging_steps(400, 0) == 20
    assert training.logging_steps(100_000, 0) == 50
    assert training.logging_steps(400, 7) == 7


def test_packaged_model_resolves_offline(tmp_path):
    path = training.resolve_model("sentence-transformers/all-MiniLM-L6-v2", None)
    assert (tmp_path.__class__(path) / "config.json").exists()
    (tmp_path / "config.json").write_text("{}")
    assert training.resolve_model("sentence-transformers/all-MiniLM-L6-v2", str(tmp_path)) == str(tmp_path)
    assert training.resolve_model("org/other", None) == "org/other"


def test_best_threshold_prefers_the_f1_optimum():
    import numpy as np

    probs = np.array([[0.3, 0.1], [0.35, 0.9], [0.05, 0.2]])
    labels = np.array([[1, 0], [1, 1], [0, 0]])
    # every threshold in (0.2, 0.3] is perfect; ties go to the one closest to 0.5
    assert outputs.best_threshold(probs, labels) == 0.3


def test_half_written_checkpoints_are_skipped_and_removed(tmp_path):
    def checkpoint(step, files):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for f in files:
            (folder / f).write_text("x")

    whole = ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"]
    checkpoint(10, whole)
    checkpoint(20, ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state_0.pth", "rng_state_1.pth",
                    "trainer_state.json"])  # two processes
    checkpoint(30, ["model.safetensors"])  # killed while saving
    checkpoint(40, ["model.safetensors", "trainer_state.json", "rng_state.pth"])  # a partial checkpoint sync
    checkpoint(50, [f for f in whole if f != "scheduler.pt"])
    (tmp_path / "runs").mkdir()
    assert checkpoints.newest_complete_checkpoint(str(tmp_path), log=lambda m: None).endswith("checkpoint-20")
    assert not any((tmp_path / f"checkpoint-{s}").exists() for s in (30, 40, 50)) and (tmp_path / "runs").exists()
    assert checkpoints.newest_complete_checkpoint(str(tmp_path / "missing")) is None


def test_prepared_labels_are_ids_or_names():
    encode = channels.label_encoder(["neg", "pos"], {})
    assert [encode(0), encode(1), encode("pos")] == [0, 1, 1]
    with pytest.raises(ValueError, match="outside 0..1"):
        encode(2)


def test_label_mapping_keys_are_normalised_the_same_on_both_sides():
    import sagefinetune as sft
    from sagefinetune.plans.training import render_hyperparameters

    data = sft.Dataset.from_s3(train="s3://b/train/")
    hp = render_hyperparameters(sft.Job.from_dataset(data).map_labels({1.0: "negative", 5.0: "positive"}))
    mapping = contract.parse_hyperparameters(hp)["label_mapping"]
    assert mapping == {"1": "negative", "5": "positive"}
    encode = channels.label_encoder(["negative", "positive"], mapping)
    assert [encode(v) for v in (1, 1.0, "1", 5, 5.0)] == [0, 0, 0, 1, 1]


NASTY = ["children's books", 'say "hi"', "$HOME", "back\\slash", "two  spaces", "naïve café", "100%", "%27", "日本語"]


@pytest.mark.parametrize("name", NASTY)
def test_values_survive_the_sagemaker_driver_and_its_shell_file(name):
    from sagemaker.train.container_drivers.common import utils as driver

    rendered = {"labels": contract.render_hyperparameter([name, "other"]), "text_column": contract.render_hyperparameter(name)}
    for value in rendered.values():
        assert "'" not in value  # environment.py writes export SM_HP_X='<value>' with no quoting
        sm_hps = driver.safe_serialize(driver.safe_deserialize(value))  # what environment.py exports
        assert "'" not in sm_hps
    args = driver.hyperparameters_to_cli_args({k: driver.safe_deserialize(v) for k, v in rendered.items()})
    assert [contract.driver_round_trip(v) for v in rendered.values()] == args[1::2]  # our model of the driver is exact
    hp = contract.parse_hyperparameters(contract.read_raw_hyperparameters(args))
    assert hp["labels"] == [name, "other"] and hp["text_column"] == name


def test_encoding_is_reversible():
    for text in NASTY + ["%2527", "''", "%%"]:
        assert contract.decode_value(contract.encode_value(text)) == text


@pytest.mark.parametrize("raw", ["inf", "nan", "-inf"])
def test_non_finite_numbers_are_refused(raw):
    with pytest.raises(ValueError, match="epochs"):
        contract.parse_hyperparameters({"epochs": raw})
    with pytest.raises(ValueError, match="batch_size"):
        contract.parse_hyperparameters({"batch_size": raw})


def test_ddp_skips_the_unused_parameter_search_under_torchrun():
    assert training.distributed_kwargs(2) == {"ddp_find_unused_parameters": False}
    assert training.distributed_kwargs(1) == {}


def test_values_from_sm_hps_alone_are_decoded_too(monkeypatch):
    # SageMaker's driver JSON-decodes SM_HPS: a script that reads it without the --name value arguments gets lists
    # and dicts whose strings are still %-encoded
    sent = {"labels": contract.render_hyperparameter(["children's books", "100%"]),
            "label_mapping": contract.render_hyperparameter({"it's": "children's books", "5": "100%"})}
    monkeypatch.setenv("SM_HPS", json.dumps({k: json.loads(v) for k, v in sent.items()}))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", "/nonexistent")
    hp = contract.parse_hyperparameters(contract.read_raw_hyperparameters([]))
    assert hp["labels"] == ["children's books", "100%"]
    assert hp["label_mapping"] == {"it's": "children's books", "5": "100%"}
