"""Evaluate a trained model on a test channel and write ``evaluation.json``: the pipeline's evaluation step.

A SageMaker processing job (the step of ``job.pipeline(...)``) and ``pipeline.run_local()`` both run this file:

    python evaluation.py --model_dir <model folder or model.tar.gz> --test_dir <channel> --output_dir <folder> \\
        [--text_column text --label_column label --label_mapping {...} --text_pair_column "" --eval_batch_size 64]

It reads the test channel as the training entry point does (channels.py), scores with the same metric module
(outputs.py: accuracy, macro F1, precision, recall, MCC; micro/macro F1 for multi-label, at the threshold the run
chose), and writes ``evaluation.json`` (``{"metrics": {"eval_f1": ...}, "labels": [...], "rows": N, ...}``, which
the pipeline's condition reads through a property file), ``classification_report.json`` and
``confusion_matrix.json`` into the output folder. Standard library here; transformers, torch and scikit-learn when
it runs (they are in the training image).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import tarfile
import tempfile
from typing import Any

if __package__:
    from . import channels, contract, outputs, redaction
else:  # run as a script: the modules sit beside this file
    import channels  # type: ignore[no-redef]
    import contract  # type: ignore[no-redef]
    import outputs  # type: ignore[no-redef]
    import redaction  # type: ignore[no-redef]

PATHS = {"model_dir": "/opt/ml/processing/model", "test_dir": "/opt/ml/processing/test",
         "output_dir": "/opt/ml/processing/evaluation"}
#: The hyperparameters that say how to read the channel; the rest come from the model folder's settings.
READ_HYPERPARAMETERS = ("text_column", "label_column", "text_pair_column", "label_mapping", "eval_batch_size")
REPORT = "evaluation.json"


def log(message: str) -> None:
    print(f"[sagefinetune] {redaction.redact(message)}", flush=True)


def parse_args(argv: list[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """The three folders (container defaults) and the channel-reading hyperparameters, typed by the contract."""
    raw: dict[str, str] = {}
    if len(argv) % 2 or not all(a.startswith("--") for a in argv[::2]):
        raise SystemExit(f"evaluation.py: arguments come as --name value pairs; got {argv}")
    for key, value in zip(argv[::2], argv[1::2]):
        raw[key[2:].replace("-", "_")] = value
    paths = {name: str(raw.pop(name, default)) for name, default in PATHS.items()}
    unknown = sorted(set(raw) - set(READ_HYPERPARAMETERS))
    if unknown:
        raise SystemExit(f"evaluation.py: unknown argument(s) {unknown}; it takes --model_dir, --test_dir, --output_dir "
                         f"and {', '.join('--' + k for k in READ_HYPERPARAMETERS)}")
    return paths, contract.parse_hyperparameters(raw)


def model_folder(path: str, scratch: str) -> str:
    """The model folder itself, or a ``model.tar.gz`` (as a training job leaves it) unpacked into ``scratch``."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    archives = [path] if path.endswith(".tar.gz") else sorted(glob.glob(os.path.join(path, "*.tar.gz")))
    if not archives:
        raise SystemExit(f"no model in {path}: neither a config.json nor a model.tar.gz")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(scratch, filter="data")
    return scratch


def evaluate(paths: dict[str, str], hp: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="sft-eval-") as scratch:
        folder = model_folder(paths["model_dir"], os.path.join(scratch, "model"))
        with open(os.path.join(folder, contract.SETTINGS_FILE)) as fh:
            settings = json.load(fh)
        names, multi = settings["labels"], settings["problem_type"] == "multi_label_classification"
        if settings.get("text_pair") and not hp["text_pair_column"]:
            hp["text_pair_column"] = "text_pair"
        hp["truncation"] = settings.get("truncation") or "head"  # cut as training cut
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        test = channels.tokenize_splits({"test": channels.load_channel(paths["test_dir"])}, tokenizer, hp, names, multi,
                                        int(settings["max_length"]))["test"]
        log(f"evaluating {len(test)} rows on {'cuda' if torch.cuda.is_available() else 'cpu'}")
        scorer = outputs.Scorer(multi)
        scorer.threshold = float(settings.get("threshold", 0.5))
        final = predict(model, tokenizer, test, scorer, hp["eval_batch_size"], scratch)
    metrics = {k: float(v) for k, v in (final.metrics or {}).items() if isinstance(v, (int, float))
               and not k.endswith(("_runtime", "_per_second", "_preparation_time"))}
    os.makedirs(paths["output_dir"], exist_ok=True)
    # the model folder is an input here: it stays as training left it (its hash addresses this step)
    outputs.write_reports(final, names, multi, scorer.threshold, paths["output_dir"], paths["output_dir"])
    report = {"metrics": metrics, "labels": names, "problem_type": settings["problem_type"], "rows": len(test),
              "threshold": scorer.threshold if multi else None}
    with open(os.path.join(paths["output_dir"], REPORT), "w") as fh:
        json.dump(report, fh, indent=2, sort_keys=True)
    for key, value in metrics.items():
        print(contract.metric_line(key, value, 0, None), flush=True)
    return report


def predict(model: Any, tokenizer: Any, test: Any, scorer: Any, batch_size: int, scratch: str) -> Any:
    """The Trainer's prediction loop, as training's final evaluation ran it: same collator, same metrics."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    cuda = torch.cuda.is_available()
    args = TrainingArguments(output_dir=os.path.join(scratch, "trainer"), per_device_eval_batch_size=batch_size,
                             report_to="none", disable_tqdm=True, use_cpu=not cuda, dataloader_pin_memory=cuda)
    trainer = Trainer(model=model, args=args, processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=scorer)
    return trainer.predict(test, metric_key_prefix="eval")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    paths, hp = parse_args(sys.argv[1:] if argv is None else argv)
    report = evaluate(paths, hp)
    log(f"wrote {os.path.join(paths['output_dir'], REPORT)}")
    return report


if __name__ == "__main__":
    redaction.run_redacted(main)
