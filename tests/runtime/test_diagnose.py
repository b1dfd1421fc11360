"""Diagnoses and curves: each check on synthetic metric lines, and each on a real run made to show it."""

from __future__ import annotations

import doctest
import json
import math

import pandas as pd
import pytest
from conftest import MODEL, SAVE_ONCE, small_job

import sagefinetune as sft
import sagefinetune.runtime.curves
import sagefinetune.runtime.diagnose
from sagefinetune.entrypoint.contract import label_counts_line, metric_line
from sagefinetune.runtime.curves import Curves
from sagefinetune.runtime.diagnose import GPU_REFERENCE, diagnose


def test_docstring_examples():
    for module in (sagefinetune.runtime.curves, sagefinetune.runtime.diagnose):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, (module.__name__, result)


# ---- synthetic logs ------------------------------------------------------------------------------------------
def log(losses, evals=(), grads=(), counts=None, accuracy=None, start="cpu", runtime=10.0, speed=50.0, steps_per_epoch=10):
    """Metric lines as the entry point prints them: losses every step, one evaluation per epoch, then the final one."""
    lines = [f"[sagefinetune] transformers 5.0, torch 2.13, 1 process(es), {start}, precision fp32"]
    for split, c in (counts or {}).items():
        lines.append(label_counts_line(split, c))
    for i, loss in enumerate(losses):
        step = i + 1
        lines.append(metric_line("loss", loss, step, step / steps_per_epoch))
        if i < len(grads):
            lines.append(metric_line("grad_norm", grads[i], step, step / steps_per_epoch))
        if step % steps_per_epoch == 0 and step // steps_per_epoch <= len(evals):
            lines.append(metric_line("eval_loss", evals[step // steps_per_epoch - 1], step, step / steps_per_epoch))
    end = len(losses)
    lines.append(metric_line("train_runtime", runtime, end, end / steps_per_epoch))
    lines.append(metric_line("train_samples_per_second", speed, end, end / steps_per_epoch))
    if accuracy is not None:
        lines.append(metric_line("eval_accuracy", accuracy, end, end / steps_per_epoch))
    return lines


def kinds(lines, **kw):
    return diagnose(Curves.from_lines(lines), run="r", **kw).kinds()


def falling(n=50, start=1.6, end=0.1):
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def test_a_healthy_log_raises_nothing():
    d = diagnose(Curves.from_lines(log(falling(), evals=[1.0, 0.7, 0.5, 0.45, 0.44], accuracy=0.9,
                                       counts={"train": {"a": 50, "b": 40}, "test": {"a": 10, "b": 10}})), run="r")
    assert not d and "no problem found" in str(d)
    assert set(d.checked) == {"diverged", "loss_not_decreasing", "overfitting", "majority_baseline", "class_imbalance"}


def test_overfitting_needs_two_rises_while_training_loss_falls():
    assert kinds(log(falling(), evals=[1.0, 0.8, 0.9, 1.1, 1.3])) == ["overfitting"]
    assert kinds(log(falling(), evals=[1.0, 0.8, 0.9, 0.85, 0.9])) == []  # one rise at a time is noise
    finding = diagnose(Curves.from_lines(log(falling(), evals=[1.0, 0.8, 0.9, 1.1, 1.3])), run="r").findings[0]
    assert finding.evidence["best_epoch"] == 2 and "epochs=2" in finding.advice[0]


def test_flat_nan_exploding_and_zero_gradient_losses():
    assert kinds(log([1.6] * 40)) == ["loss_not_decreasing"]
    assert kinds(log([1.6, 1.5, float("nan"), float("nan")])) == ["diverged"]
    assert kinds(log([1.6, 3.0, 9.0, 40.0, 12.0, 11.0])) == ["diverged"]
    zero = kinds(log(falling(12, 1.6, 1.2) + [1.2] * 12, grads=[1.0] * 12 + [0.0] * 12))
    assert zero == ["diverged"]


def test_majority_baseline_and_imbalance_read_the_label_counts():
    counts = {"train": {"pos": 200, "neg": 10}, "test": {"pos": 95, "neg": 5}}
    assert kinds(log(falling(), counts=counts, accuracy=0.95)) == ["majority_baseline", "class_imbalance"]
    # The advice points at another finding only when there is one that explains it (a flat or diverged loss).
    alone = diagnose(Curves.from_lines(log(falling(), counts=counts, accuracy=0.95)), run="r").findings[0]
    assert alone.kind == "majority_baseline" and not [a for a in alone.advice if "finding" in a], alone.advice
    flat = diagnose(Curves.from_lines(log([1.6] * 40, counts=counts, accuracy=0.95)), run="r")
    assert flat.kinds() == ["loss_not_decreasing", "majority_baseline", "class_imbalance"]
    assert flat.findings[1].advice[0] == "the loss_not_decreasing finding above explains it: fix that first"
    assert kinds(log(falling(), counts=counts, accuracy=0.99)) == ["class_imbalance"]
    assert kinds(log(falling(), counts=counts, accuracy=0.95), multi_label=True) == ["class_imbalance"]


def test_low_throughput_only_on_gpus():
    slow = log(falling(), start="cuda x1", speed=5.0)
    assert kinds(slow, gpu="A10G", max_length=128) == ["low_throughput"]
    assert kinds(log(falling(), start="cuda x1", speed=0.8 * GPU_REFERENCE["A10G"]), gpu="A10G", max_length=128) == []
    assert kinds(log(falling(), speed=5.0), gpu="A10G") == []  # a CPU run is not judged against a GPU

    class Estimate:  # a plan's estimate, when estimate.py provides one
        seconds_high, basis = 100.0, "calibrated"

    assert kinds(log(falling(), start="cuda x1", runtime=400.0), gpu="A10G", estimate=Estimate()) == ["low_throughput"]
    assert kinds(log(falling(), start="cuda x1", runtime=120.0), gpu="A10G", estimate=Estimate()) == []


def test_a_resumed_log_keeps_the_values_of_the_run_that_resumed():
    first = log(falling(30))[:-2]  # interrupted before the end
    second = log(falling(50))
    c = Curves.from_lines(first + second)
    steps = [p.step for p in c.series["loss"]]
    assert steps == sorted(steps) and len(steps) == 50 and c.final["train_runtime"] == 10.0


def test_curves_plot_marks_epochs_and_the_saved_model(tmp_path):
    c = Curves.from_lines(log(falling(), evals=[1.0, 0.8, 0.7, 0.6, 0.5], accuracy=0.9))
    assert c.epoch_ends() == [10, 20, 30, 40, 50]
    fig = sagefinetune.runtime.curves.plot_curves(c, tmp_path / "c.png", title="t", checkpoints=[40, 50])
    assert (tmp_path / "c.png").stat().st_size > 10_000
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"training loss", "evaluation loss", "epoch end", "model saved (step 50)", "checkpoints kept"} <= set(labels)


# ---- real runs --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_healthy_run_raises_no_finding_and_plots(trained_run, tmp_path):
    d = trained_run.diagnose()
    assert not d, str(d)
    assert {"diverged", "loss_not_decreasing", "majority_baseline", "class_imbalance"} <= set(d.checked)
    curves = trained_run.curves()
    matrix = json.loads((trained_run.run_dir / "output" / "data" / "confusion_matrix.json").read_text())
    assert curves.label_counts["test"] == {n: sum(row) for n, row in zip(matrix["labels"], matrix["matrix"])}
    assert len(curves.values("eval_loss")) == 3 and curves.final["eval_accuracy"] == trained_run.metrics["eval_accuracy"]
    fig = trained_run.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and len(fig.axes) == 2


@pytest.mark.slow
def test_many_epochs_on_few_rows_overfit(tmp_path, capsys):
    # 40 rows, 10 epochs, a large learning rate and no warmup: the training loss goes to ~0, the evaluation loss turns up
    run = small_job(train=40, test=100, epochs=10, batch_size=8, learning_rate=1e-3, warmup=0.0, **SAVE_ONCE).fit(
        run_dir=tmp_path / "overfit")
    d = run.diagnose()
    assert "overfitting" in d.kinds(), str(d)
    finding = next(f for f in d if f.kind == "overfitting")
    evals, best = finding.evidence["eval_loss"], finding.evidence["best_epoch"]
    assert evals[-1] > evals[best - 1] and best < 10
    assert "overfitting" in capsys.readouterr().err  # fit() printed it


def imbalanced_job(learning_rate):
    """Sports vs business, 19:1 in the training rows."""
    dd = sft.Dataset.example("bbc_news").load()
    names = dd["train"].features["label"].names
    frames = {}
    for split, (major, minor) in {"train": (190, 10), "test": (95, 5)}.items():
        df = dd[split].to_pandas()
        df["label"] = [names[i] for i in df["label"]]
        frames[split] = pd.concat([df[df.label == "sports"].head(major), df[df.label == "business"].head(minor)])
    return (sft.Job.from_dataset(sft.Dataset.from_pandas(frames)).model(MODEL, num_hidden_layers=2)
            .hyperparameters(epochs=2, batch_size=16, learning_rate=learning_rate, max_length=32, save_total_limit=1,
                             **SAVE_ONCE))


@pytest.mark.slow
def test_a_huge_learning_rate_diverges_to_the_majority_class_on_imbalanced_rows(tmp_path):
    run = imbalanced_job(0.5).fit(run_dir=tmp_path / "diverged", progress=False)
    d = run.diagnose()
    assert {"diverged", "majority_baseline", "class_imbalance"} <= set(d.kinds()), str(d)
    majority = next(f for f in d if f.kind == "majority_baseline").evidence
    assert majority["majority_class"] == "sports" and majority["majority_share"] == 0.95
    assert run.metrics["eval_accuracy"] <= 0.96
    imbalance = next(f for f in d if f.kind == "class_imbalance").evidence
    assert imbalance["train_counts"] == {"business": 10, "sports": 190} and math.isclose(imbalance["ratio"], 19)
