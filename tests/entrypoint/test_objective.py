"""class_weights and early_stopping in the entry point: the weights, the weighted loss's gradient on transformers 4.56
and 5.x, and the TrainingArguments that keep the best checkpoint. No model is trained here (see
tests/backends/test_objective_local.py)."""

import doctest
import json
import os
import subprocess
from pathlib import Path

import pytest

from sagefinetune.entrypoint import contract, objective

ENTRYPOINT = Path(objective.__file__).parent
COMPAT = os.environ.get("SFT_COMPAT_PYTHON")  # the V100 image's transformers 4.56.2 (CI builds it)


def test_docstring_examples():
    result = doctest.testmod(objective)
    assert result.attempted >= 5 and result.failed == 0


def test_class_weights_travel_as_sagemaker_passes_them():
    names = {"children's books": 2.5, "news": 1}
    sent = contract.render_hyperparameter(names)
    arrives = contract.driver_round_trip(sent)  # what SageMaker's driver hands the script
    assert contract.parse_hyperparameters({"class_weights": arrives})["class_weights"] == {"children's books": 2.5,
                                                                                          "news": 1.0}
    assert contract.parse_hyperparameters({"class_weights": "balanced"})["class_weights"] == "balanced"
    assert contract.parse_hyperparameters({})["class_weights"] is None
    for bad in ('{"news": 0}', '{"news": "inf"}', "balance", "{}"):
        with pytest.raises(ValueError, match="class_weights"):
            contract.parse_hyperparameters({"class_weights": bad})


def test_balanced_weights_are_scikit_learns():
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 60 + [1] * 30 + [2] * 5)
    ours = objective.loss_weights("balanced", ["a", "b", "c"], [60, 30, 5], len(y), multi=False)
    assert ours == pytest.approx(list(compute_class_weight("balanced", classes=np.arange(3), y=y)))
    # multi-label: negatives / positives per label; a label on no row or on every row weighs 1
    assert objective.loss_weights("balanced", ["x", "y", "z", "w"], [10, 25, 0, 100], 100, multi=True) == [9.0, 3.0,
                                                                                                          1.0, 1.0]
    assert objective.loss_weights({"c": 4.0}, ["a", "b", "c"], [], 0, multi=False) == [1.0, 1.0, 4.0]
    assert objective.loss_weights(None, ["a"], [], 0, multi=False) is None
    with pytest.raises(SystemExit, match=r"class_weights names \['d'\].*Fix:"):
        objective.loss_weights({"d": 2.0}, ["a", "b", "c"], [], 0, multi=False)


def hp(**values):
    return contract.parse_hyperparameters({"labels": '["a","b"]', **{k: str(v) for k, v in values.items()}})


def test_best_model_arguments_evaluate_where_checkpoints_are_saved(monkeypatch):
    assert objective.best_model_arguments(hp(), multi=False, has_validation=True) == {}
    every_epoch = objective.best_model_arguments(hp(early_stopping=2), multi=True, has_validation=True)
    assert every_epoch["eval_strategy"] == "epoch" and every_epoch["metric_for_best_model"] == "eval_f1_micro"
    assert every_epoch["load_best_model_at_end"] and every_epoch["restore_callback_states_from_checkpoint"]
    steps = objective.best_model_arguments(hp(early_stopping=2, save_steps=50, early_stopping_metric="eval_loss"),
                                           multi=False, has_validation=True)
    assert (steps["eval_strategy"], steps["eval_steps"]) == ("steps", 50) and steps["greater_is_better"] is False
    assert "save_on_each_node" not in steps
    monkeypatch.setenv("WORLD_SIZE", "16")  # two nodes of 8 GPUs: each node needs the best checkpoint on its disk
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert objective.best_model_arguments(hp(early_stopping=2), multi=False, has_validation=True)["save_on_each_node"]


def test_early_stopping_refuses_what_would_watch_the_wrong_thing():
    with pytest.raises(SystemExit, match="needs a validation channel.*Fix:"):
        objective.best_model_arguments(hp(early_stopping=2), multi=False, has_validation=False)
    with pytest.raises(SystemExit, match="eval_each_epoch=false.*Fix:"):
        objective.best_model_arguments(hp(early_stopping=2, eval_each_epoch="false"), multi=False, has_validation=True)
    with pytest.raises(SystemExit, match="not computed for single-label rows.*Fix:"):
        objective.best_model_arguments(hp(early_stopping=2, early_stopping_metric="eval_f1_micro"), multi=False,
                                       has_validation=True)


def test_the_training_arguments_are_accepted_by_transformers(tmp_path):
    from sagefinetune.entrypoint import hardware, training

    choices = hardware.choose("fp32", hardware.detect())
    args = training.training_arguments(hp(early_stopping=3, save_steps=20), checkpoint_dir=str(tmp_path),
                                       choices=choices, steps=100, has_eval=True, world_size=1, has_validation=True)
    assert (args.eval_strategy, args.save_strategy, args.eval_steps, args.save_steps) == ("steps", "steps", 20, 20)
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_f1"


# The weighted loss inside a real Trainer, run by each transformers at hand: the loss is torch's weighted mean, and
# one training step with 2 accumulation steps back-propagates half of it (the Trainer divides, as for its own loss).
CHECK = r"""
import json, sys, tempfile
sys.path.insert(0, sys.argv[1])
import torch, transformers
from transformers import TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput
import objective

class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 3)
    def forward(self, features, labels=None):
        return SequenceClassifierOutput(logits=self.linear(features))

weights = [1.0, 1.0, 5.0]
x, y = torch.randn(6, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 0, 1, 1, 0, 2])
out = {"version": transformers.__version__}
for name, w in (("weighted", weights), ("plain", [1.0, 1.0, 1.0])):
    model = Tiny()
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to="none",
                             gradient_accumulation_steps=2)
    trainer = objective.weighted_trainer(w, multi=False)(model=model, args=args)
    trainer.current_gradient_accumulation_steps = 2  # what the training loop sets
    loss = trainer.compute_loss(model, {"features": x, "labels": y})
    expected = torch.nn.functional.cross_entropy(model(x).logits, y, weight=torch.tensor(w))
    model.zero_grad()
    step = trainer.training_step(model, {"features": x, "labels": y})
    out[name] = {"loss": loss.item(), "expected": expected.item(), "step": float(step),
                 "grad": model.linear.weight.grad.tolist()}
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x).logits, y, weight=torch.tensor(w)).backward()
    out[name]["grad_of_mean"] = model.linear.weight.grad.tolist()  # the step's gradient is half of it
multi = objective.weighted_trainer([3.0, 1.0], multi=True)(model=torch.nn.Linear(1, 1), args=args)
hot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
class Two(torch.nn.Module):
    def forward(self, features, labels=None):
        return SequenceClassifierOutput(logits=features)
got = multi.compute_loss(Two(), {"features": torch.zeros(2, 2), "labels": hot})
want = torch.nn.functional.binary_cross_entropy_with_logits(torch.zeros(2, 2), hot, pos_weight=torch.tensor([3.0, 1.0]))
out["multi"] = [got.item(), want.item()]
print(json.dumps(out))
"""


def test_the_weighted_loss_is_torchs_weighted_mean_and_changes_the_gradient(python):
    done = subprocess.run([python, "-c", CHECK, str(ENTRYPOINT)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert python != COMPAT or out["version"] == "4.56.2"
    for name in ("weighted", "plain"):
        r = out[name]
        assert r["loss"] == pytest.approx(r["expected"], rel=1e-5)
        assert r["step"] == pytest.approx(r["expected"] / 2, rel=1e-5)  # divided by the accumulation steps
        twice = [2 * g for row in r["grad"] for g in row]
        assert twice == pytest.approx([g for row in r["grad_of_mean"] for g in row], rel=1e-4, abs=1e-7)
    # the rare class's row counts 5x: the losses and the gradients differ
    assert out["weighted"]["loss"] != pytest.approx(out["plain"]["loss"], rel=1e-3)
    rare_row = [out[n]["grad"][2] for n in ("weighted", "plain")]
    assert rare_row[0] != pytest.approx(rare_row[1], rel=1e-2)
    assert out["multi"][0] == pytest.approx(out["multi"][1], rel=1e-6)
