"""What training optimises and what it watches: the class-weighted loss and early stopping.

- ``class_weights``: :func:`loss_weights` turns the hyperparameter into one weight per class (``"balanced"``: from the
  train split's counts, as scikit-learn's ``compute_class_weight``; multi-label: ``pos_weight`` per label, negatives /
  positives), and :func:`weighted_trainer` is a Trainer whose loss applies them, on transformers 4.56 and 5.x alike.
- ``early_stopping``: :func:`best_model_arguments` evaluates where checkpoints are saved, keeps the best one
  (``load_best_model_at_end``) and restores the callback's patience counter from ``trainer_state.json`` on resume;
  :func:`callbacks` is transformers' own ``EarlyStoppingCallback``.

Standard library at the top (the client checks names with :func:`early_stopping_metric`); torch and transformers are
imported when the Trainer pieces are called.
"""

from __future__ import annotations

import os
from typing import Any

#: The evaluation metrics of each problem type (metrics/classification.py, and the loss).
SINGLE_LABEL_METRICS = ("eval_loss", "eval_f1", "eval_accuracy", "eval_precision", "eval_recall", "eval_mcc")
MULTI_LABEL_METRICS = ("eval_loss", "eval_f1_micro", "eval_f1_macro", "eval_precision_micro", "eval_recall_micro",
                       "eval_subset_accuracy")


def early_stopping_metric(requested: str, multi: bool) -> tuple[str, bool]:
    """The metric early stopping watches and whether greater is better. ``auto``: macro F1 (eval_f1), or micro F1
    (eval_f1_micro) for multi-label rows. Raises ValueError for a metric this problem type does not compute.

    >>> early_stopping_metric("auto", multi=True)
    ('eval_f1_micro', True)
    >>> early_stopping_metric("eval_loss", multi=False)
    ('eval_loss', False)
    """
    name = ("eval_f1_micro" if multi else "eval_f1") if requested == "auto" else requested
    known = MULTI_LABEL_METRICS if multi else SINGLE_LABEL_METRICS
    if name not in known:
        raise ValueError(f"early_stopping_metric={requested!r} is not computed for "
                         f"{'multi' if multi else 'single'}-label rows; they have {', '.join(known)}")
    return name, name != "eval_loss"


# ---- class weights --------------------------------------------------------------------------------------------
def loss_weights(class_weights: Any, names: list[str], counts: list[int], rows: int, multi: bool) -> list[float] | None:
    """One weight per class in id order (multi-label: each label's ``pos_weight``), or None for the plain loss.

    ``"balanced"``: rows / (classes x rows of the class), scikit-learn's formula; multi-label: negatives / positives
    of each label. A class without rows (or a label on every row) weighs 1. A mapping names some classes; the others
    weigh 1.

    >>> loss_weights("balanced", ["a", "b"], [90, 10], 100, multi=False)
    [0.5555555555555556, 5.0]
    >>> loss_weights("balanced", ["x", "y"], [20, 50], 100, multi=True)
    [4.0, 1.0]
    >>> loss_weights({"b": 3.0}, ["a", "b"], [], 0, multi=False)
    [1.0, 3.0]
    """
    if not class_weights:
        return None
    if class_weights == "balanced":
        if multi:
            return [(rows - c) / c if 0 < c < rows else 1.0 for c in counts]
        return [rows / (len(names) * c) if c else 1.0 for c in counts]
    unknown = sorted(set(class_weights) - set(names))
    if unknown:
        raise SystemExit(f"class_weights names {unknown}, which are not classes of this run ({names}). "
                         "Fix: name classes of the label map, or class_weights='balanced'.")
    return [float(class_weights.get(name, 1.0)) for name in names]


def describe_weights(weights: list[float], names: list[str], class_weights: Any, multi: bool) -> str:
    """The log line that says which weights the loss uses."""
    how = "balanced, from the train split's counts" if class_weights == "balanced" else "as given"
    what = "positive weights per label (BCE pos_weight)" if multi else "class weights of the cross-entropy"
    return f"{what} ({how}): " + ", ".join(f"{n} {w:.4g}" for n, w in zip(names, weights))


def weighted_trainer(weights: list[float], multi: bool) -> type:
    """A Trainer subclass whose loss is the weighted cross-entropy (multi-label: BCE with logits and ``pos_weight``).

    The loss is the batch's weighted mean, as ``torch.nn.CrossEntropyLoss(weight=...)`` computes it; the Trainer
    divides it by the gradient accumulation steps itself: ``model_accepts_loss_kwargs`` is off, so no
    ``num_items_in_batch`` comes in (4.56 and 5.x), and ``loss_is_scaled_for_ga`` says the same to 5.x. The evaluation
    loss is weighted too, so training and evaluation losses compare.
    """
    import torch
    from transformers import Trainer

    class WeightedLossTrainer(Trainer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False
            self.loss_is_scaled_for_ga = False
            self.class_weights = torch.tensor(weights, dtype=torch.float32)

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None, **kwargs: Any) -> Any:
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = (outputs["logits"] if isinstance(outputs, dict) else outputs[0]).float()
            weight = self.class_weights.to(logits.device)
            if multi:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)
            else:
                loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1),
                                                         weight=weight)
            return (loss, outputs) if return_outputs else loss

    return WeightedLossTrainer


# ---- early stopping -------------------------------------------------------------------------------------------
def best_model_arguments(hp: dict[str, Any], multi: bool, has_validation: bool) -> dict[str, Any]:
    """TrainingArguments for ``early_stopping``: evaluate where checkpoints are saved, keep the best one, and bring the
    patience counter back from ``trainer_state.json`` on resume. Empty when early stopping is off.

    >>> hp = {"early_stopping": 3, "early_stopping_metric": "auto", "save_steps": 0, "eval_each_epoch": True}
    >>> best_model_arguments(hp, multi=False, has_validation=True)  # doctest: +NORMALIZE_WHITESPACE
    {'eval_strategy': 'epoch', 'load_best_model_at_end': True, 'metric_for_best_model': 'eval_f1',
     'greater_is_better': True, 'restore_callback_states_from_checkpoint': True}
    """
    if not hp["early_stopping"]:
        return {}
    if not has_validation:
        raise SystemExit(f"early_stopping={hp['early_stopping']} needs a validation channel to watch; this job has "
                         "none (the test split stays for the final score). Fix: add a validation channel "
                         "(Dataset.from_s3(train=..., validation=..., test=...)), or early_stopping=0.")
    if not hp["eval_each_epoch"]:
        raise SystemExit("early_stopping needs evaluations; eval_each_epoch=false turns them off. "
                         "Fix: eval_each_epoch=true, or early_stopping=0.")
    try:
        metric, greater = early_stopping_metric(hp["early_stopping_metric"], multi)
    except ValueError as exc:
        raise SystemExit(f"{exc}. Fix: early_stopping_metric='auto'.") from None
    when = {"eval_strategy": "steps", "eval_steps": hp["save_steps"]} if hp["save_steps"] else {"eval_strategy": "epoch"}
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # several nodes: each needs the best checkpoint on its own disk to load it at the end
    nodes = {"save_on_each_node": True} if world > int(os.environ.get("LOCAL_WORLD_SIZE", world)) else {}
    return {**when, "load_best_model_at_end": True, "metric_for_best_model": metric, "greater_is_better": greater,
            "restore_callback_states_from_checkpoint": True, **nodes}


def callbacks(patience: int) -> list[Any]:
    """transformers' EarlyStoppingCallback with ``patience`` evaluations, or nothing when it is 0."""
    if not patience:
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=patience)]


def outcome(state: Any, metric: str) -> str:
    """The log line after training with early stopping: where it stopped, and which checkpoint became the model."""
    stopped = "stopped early" if state.global_step < state.max_steps else "ran to the end"
    best = os.path.basename(state.best_model_checkpoint) if state.best_model_checkpoint else "the last step's weights"
    score = f", {metric} {state.best_metric:.4g}" if state.best_metric is not None else ""
    return f"early stopping: {stopped} at step {state.global_step} of {state.max_steps}; the model is {best}{score}"
