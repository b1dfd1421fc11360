"""Defaults chosen for the model at hand: the learning rate follows the encoder's width; explicit values win."""

from __future__ import annotations

import json

import pytest

import sagefinetune as sft
from sagefinetune.facts.defaults import WARMUP, choose, hidden_size, learning_rate_for

DATA = sft.Dataset.example("rotten_tomatoes").sample(train=2000, test=500, seed=42)


@pytest.mark.parametrize(("model", "width", "rate"), [
    ("sentence-transformers/all-MiniLM-L6-v2", 384, 1.5e-4),
    ("prajjwal1/bert-small", 512, 1e-4),
    ("distilbert-base-uncased", 768, 5e-5),
    ("distilbert/distilbert-base-uncased", 768, 5e-5),  # the Hub's moved id
    ("FacebookAI/roberta-large", 1024, 2e-5),
    ("someone/bert-tiny-finetuned", 384, 1.5e-4),  # from the name
    ("someone/encoder-large-v2", 1024, 2e-5),
])
def test_the_rate_follows_the_width(model, width, rate):
    assert hidden_size(model)[0] == width and learning_rate_for(width) == rate
    plan = sft.Job.from_dataset(DATA).model(model).plan()
    assert float(plan.hyperparameters["learning_rate"]) == rate
    assert float(plan.hyperparameters["warmup"]) == WARMUP
    assert any(n.startswith(f"learning_rate={rate:g}, warmup={WARMUP:g}: chosen for {model} (hidden size {width}")
               for n in plan.notes)


def test_a_local_folder_is_sized_from_its_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", "dim": 256}))
    (tmp_path / "model.safetensors").write_bytes(b"")  # sized from the config alone: the weights are never read
    width, source = hidden_size(str(tmp_path))
    assert width == 256 and "its config" in source
    assert choose(sft.Job.from_dataset(DATA).model(str(tmp_path))).values["learning_rate"] == 1.5e-4


def test_an_unknown_model_gets_bert_base_rate_and_the_plan_says_why():
    plan = sft.Job.from_dataset(DATA).model("my-org/encoder-v7").plan()
    assert float(plan.hyperparameters["learning_rate"]) == 5e-5
    assert any("width of my-org/encoder-v7 is not known here" in n for n in plan.notes)
    assert "learning_rate=5e-05" in str(plan)


def test_explicit_values_always_win():
    job = sft.Job.from_dataset(DATA).hyperparameters(learning_rate=3e-5)
    plan = job.plan()
    assert float(plan.hyperparameters["learning_rate"]) == 3e-5
    assert [n for n in plan.notes if "warmup" in n] == [
        f'warmup={WARMUP:g}: the default warmup (measured: see the docs page "Benchmarks", section "Defaults chosen for '
        'the model"); .hyperparameters(warmup=...) overrides it']
    both = job.hyperparameters(warmup=0.0).plan()
    assert float(both.hyperparameters["warmup"]) == 0.0 and not [n for n in both.notes if "learning_rate" in n]
    # the choice is the plan's: the Job itself keeps only what the user set
    assert "learning_rate" not in sft.Job.from_dataset(DATA).hyperparameters_


def test_sagemaker_plans_carry_the_same_choice():
    plan = sft.Job.from_dataset(DATA).plan(instance="ml.g5.xlarge", bucket="my-bucket")
    assert float(plan.hyperparameters["learning_rate"]) == 1.5e-4
    assert any(n.startswith("learning_rate=0.00015") for n in plan.notes)
