"""Fine-tune a Hugging Face text classifier under SageMaker's training contract.

SageMaker's Hugging Face container and sagefinetune's local backend both run this file:

    python train.py --epochs 3 --batch_size 32 ...          # or under torchrun for several processes

It reads the data channels (SM_CHANNEL_TRAIN / _VALIDATION / _TEST: JSON Lines, CSV or Parquet), tokenizes
with truncation and dynamic padding, trains with the Hugging Face Trainer (length-grouped batches, bf16/fp16
when the GPU allows), checkpoints only into the checkpoint directory and resumes from the newest complete checkpoint,
evaluates each epoch and once more at the end, prints metric lines that SageMaker metric definitions read,
and saves model, tokenizer, config (id2label) and metrics.json to SM_MODEL_DIR. When it fails, the reason goes into
SageMaker's failure file (/opt/ml/output/failure), which becomes the job's FailureReason. It runs on transformers 4.56
(the V100 container) and 5.x alike. The steps live beside it: channels.py (data), training.py (model, arguments,
Trainer), checkpoints.py (what to resume from), outputs.py (scores and files), tracking.py (the MLflow run, when
tracking is on), contract.py (what the library and this script agree on).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

if __package__:
    from . import (
        channels,
        checkpoints,
        contract,
        hardware,
        objective,
        outputs,
        redaction,
        tokencache,
        tracking,
        training,
    )
else:  # run as a script: the modules sit beside this file
    import channels  # type: ignore[no-redef]
    import checkpoints  # type: ignore[no-redef]
    import contract  # type: ignore[no-redef]
    import hardware  # type: ignore[no-redef]
    import objective  # type: ignore[no-redef]
    import outputs  # type: ignore[no-redef]
    import redaction  # type: ignore[no-redef]
    import tokencache  # type: ignore[no-redef]
    import tracking  # type: ignore[no-redef]
    import training  # type: ignore[no-redef]

log = training.log


def read_hyperparameters(argv: list[str]) -> dict[str, Any]:
    hp = contract.parse_hyperparameters(contract.read_raw_hyperparameters(argv))
    if not hp["labels"]:
        raise SystemExit("hyperparameter 'labels' (the class names, as a JSON list) is required")
    return hp


def tokenize(where: contract.Paths, tokenizer: Any, hp: dict[str, Any], names: list[str], multi: bool,
             max_length: int) -> Any:
    """The tokenised splits: from the token cache when this data was tokenised before with these settings."""
    import datasets

    def compute() -> Any:
        raw = {name: channels.load_channel(path) for name, path in where.channels.items()}
        return datasets.DatasetDict(channels.tokenize_splits(raw, tokenizer, hp, names, multi, max_length))

    if not hp["cache_tokens"]:
        return compute()
    key = tokencache.cache_key(where.channels, tokenizer, hp, names, max_length)
    shared = bool(os.environ.get("SFT_CACHE_DIR"))  # else the checkpoint dir: keep one key there
    return tokencache.tokenized(compute, key=key, cache_root=tokencache.root(where.checkpoint_dir), log=log,
                                prune=not shared)


def machine_choices(hp: dict[str, Any], world: int) -> Any:
    """This machine's precision, attention and TF32 choices, applied and logged with the versions."""
    import torch
    import transformers

    machine = hardware.detect()
    choices = hardware.choose(hp["precision"], machine)
    hardware.apply_tf32(choices)
    log(f"transformers {transformers.__version__}, torch {torch.__version__}, {world} process(es), "
        f"{'cuda x' + str(torch.cuda.device_count()) if machine.cuda else 'cpu'}, precision {choices.precision}")
    for line in choices.why:
        log(line)
    return choices


def make_trainer(hp: dict[str, Any], where: contract.Paths, choices: Any, model: Any, tokenizer: Any, data: Any,
                 scorer: Any, world: int) -> Any:
    """The Trainer for this machine, with the class-weighted loss and early stopping when they are asked for."""
    names, multi = hp["labels"], hp["problem_type"] == "multi_label_classification"
    train_ds, validation = data["train"], data.get("validation")
    eval_ds = validation if validation is not None else data.get("test")
    args = training.training_arguments(hp, checkpoint_dir=where.checkpoint_dir, choices=choices,
                                       steps=training.total_steps(len(train_ds), hp, world),
                                       has_eval=eval_ds is not None, world_size=world, multi=multi,
                                       has_validation=validation is not None)
    counts = channels.label_counts(train_ds, names, multi) if hp["class_weights"] == "balanced" else {}
    weights = objective.loss_weights(hp["class_weights"], names, list(counts.values()), len(train_ds), multi)
    if weights:
        log(objective.describe_weights(weights, names, hp["class_weights"], multi))
    if hp["early_stopping"]:
        log(f"early stopping: after {hp['early_stopping']} evaluations without a better {args.metric_for_best_model} "
            "on the validation split; the best checkpoint becomes the model")
    return training.build_trainer(model, args, tokenizer, train_ds, eval_ds, scorer, choices.precision,
                                  loss_weights=weights, multi=multi, early_stopping=hp["early_stopping"])


def main(argv: list[str] | None = None) -> dict[str, float]:
    outputs.clear_failure()
    hp = read_hyperparameters(sys.argv[1:] if argv is None else argv)
    where = contract.paths()
    if "train" not in where.channels:
        raise SystemExit("no train channel: set SM_CHANNEL_TRAIN or put files under /opt/ml/input/data/train")
    names, multi = hp["labels"], hp["problem_type"] == "multi_label_classification"
    tracker = tracking.start(hp, where.checkpoint_dir, log)  # None unless tracking is on (SFT_TRACKING) and rank 0

    from transformers import AutoTokenizer

    training.quiet_other_ranks()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    choices = machine_choices(hp, world)

    model_path = training.resolve_model(hp["model_name_or_path"], os.environ.get("SM_CHANNEL_MODEL"))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    max_length = min(hp["max_length"], getattr(tokenizer, "model_max_length", hp["max_length"]) or hp["max_length"])
    data = tokenize(where, tokenizer, hp, names, multi, max_length)
    test_ds = data.get("test") or data.get("validation")
    log("rows: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()) + f"; max_length {max_length}, "
        f"truncation {hp['truncation']}")
    if int(os.environ.get("RANK", "0")) == 0:  # what the diagnosis compares the model with: the majority class
        for split, ds in data.items():
            print(contract.label_counts_line(split, channels.label_counts(ds, names, multi)), flush=True)

    model = training.load_model(model_path, names, hp, attention=choices.attention)
    log(f"attention: {getattr(model.config, '_attn_implementation', None) or 'the model default'}")
    scorer = outputs.Scorer(multi)
    trainer = make_trainer(hp, where, choices, model, tokenizer, data, scorer, world)
    if tracker is not None:
        trainer.add_callback(tracker.callback())

    last = checkpoints.newest_complete_checkpoint(where.checkpoint_dir, remove_incomplete=trainer.is_world_process_zero(),
                                                  log=log)
    if last:
        log(f"resuming from {last}")
    started = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    if hp["early_stopping"]:
        log(objective.outcome(trainer.state, trainer.args.metric_for_best_model))
    if multi and data.get("validation") is not None:
        scorer.tune_threshold(trainer, data["validation"])
        log(f"multi-label threshold chosen on the validation split: {scorer.threshold}")
    final = trainer.predict(test_ds, metric_key_prefix="eval") if test_ds is not None else None
    metrics = outputs.final_metrics(trainer, result, final, scorer)

    if trainer.is_world_process_zero():
        settings = {"labels": names, "problem_type": hp["problem_type"], "threshold": scorer.threshold,
                    "max_length": max_length, "truncation": hp["truncation"],
                    "text_pair": bool(hp["text_pair_column"])}
        outputs.write_model(trainer, where, settings, metrics)
        if final is not None:
            outputs.write_reports(final, names, multi, scorer.threshold, where.output_dir, where.model_dir)
    tracking.finish(tracker, metrics, trainer.state.global_step, where.output_dir)
    log(f"done in {time.time() - started:.1f}s; model in {where.model_dir}")
    return metrics


def on_failure(exc: BaseException) -> None:
    """The failure's reason becomes the job's FailureReason (see outputs.write_failure); a tracked run ends FAILED."""
    outputs.write_failure(exc)
    tracking.end_failed(exc)


if __name__ == "__main__":
    redaction.run_redacted(main, on_failure)  # the traceback is redacted
