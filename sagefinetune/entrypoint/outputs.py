"""Scoring and what a run leaves behind: metrics, the model folder, the classification report and confusion matrix,
and, when it fails, the failure file that SageMaker shows as the job's FailureReason."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

if __package__:
    from . import contract, redaction
else:  # run as a script: contract.py sits beside this file
    import contract  # type: ignore[no-redef]
    import redaction  # type: ignore[no-redef]

HERE = os.path.dirname(os.path.abspath(__file__))
METRICS_MODULE = os.path.join(HERE, "metrics", "classification.py")
INFERENCE_HANDLER = os.path.join(HERE, "inference.py")  # every model folder serves with it: code/inference.py
HANDLER_MODULES = ("truncation.py", "request_body.py", "serving_choice.py")  # what the handler imports, beside it in code/ (the toolkit puts code/ on sys.path)
STRAY_FILES = ("training_args.bin",)
FAILURE_LIMIT = 1024  # SageMaker keeps this many characters of the failure file as the job's FailureReason


def logits_of(predictions: Any) -> Any:
    return predictions[0] if isinstance(predictions, tuple) else predictions


def sigmoid(x: Any) -> Any:
    import numpy as np

    return 1 / (1 + np.exp(-x))


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


class Scorer:
    """``compute_metrics`` for the Trainer: the bundled evaluate module; multi-label rows use ``threshold``."""

    def __init__(self, multi: bool) -> None:
        import evaluate

        self.multi = multi
        self.threshold = 0.5
        self.metric = evaluate.load(METRICS_MODULE, "multilabel" if multi else "default", keep_in_memory=True)

    def __call__(self, pred: Any) -> dict[str, float]:
        logits = logits_of(pred.predictions)
        refs = pred.label_ids.astype(int).tolist()
        if self.multi:
            hot = (sigmoid(logits) >= self.threshold).astype(int)
            return self.metric.compute(predictions=hot.tolist(), references=refs)
        return self.metric.compute(predictions=logits.argmax(-1).tolist(), references=refs)

    def tune_threshold(self, trainer: Any, validation: Any) -> None:
        """Multi-label: choose the threshold with the best micro F1 on the validation split."""
        import numpy as np

        out = trainer.predict(validation, metric_key_prefix="validation")
        self.threshold = best_threshold(sigmoid(logits_of(out.predictions)), np.asarray(out.label_ids).astype(int))


def final_metrics(trainer: Any, result: Any, final: Any, scorer: Scorer) -> dict[str, float]:
    """The training summary, the step reached, and the final evaluation (printed as metric lines)."""
    metrics: dict[str, float] = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["train_global_step"] = float(trainer.state.global_step)
    if final is None:
        return metrics
    scores = {k: float(v) for k, v in (final.metrics or {}).items() if isinstance(v, (int, float))}
    metrics.update(scores)
    if scorer.multi:
        metrics["eval_threshold"] = scorer.threshold
    if trainer.is_world_process_zero():
        for key, value in scores.items():
            print(contract.metric_line(key, value, trainer.state.global_step, trainer.state.epoch), flush=True)
    return metrics


def write_model(trainer: Any, where: contract.Paths, settings: dict[str, Any], metrics: dict[str, float]) -> None:
    """Model, tokenizer and config (id2label) with the settings a predictor needs, metrics.json, and the serving
    handler as ``code/inference.py`` (where SageMaker's Hugging Face inference container looks for it), with the
    modules it imports beside it."""
    os.makedirs(where.model_dir, exist_ok=True)
    trainer.save_model(where.model_dir)  # model, tokenizer (processing_class) and config with id2label
    for stray in STRAY_FILES:
        path = os.path.join(where.model_dir, stray)
        if os.path.exists(path):
            os.remove(path)
    with open(os.path.join(where.model_dir, contract.SETTINGS_FILE), "w") as fh:
        json.dump(settings, fh, indent=2)
    with open(os.path.join(where.model_dir, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2, sort_keys=True)
    os.makedirs(os.path.join(where.model_dir, "code"), exist_ok=True)
    shutil.copyfile(INFERENCE_HANDLER, os.path.join(where.model_dir, "code", "inference.py"))
    for module in HANDLER_MODULES:
        shutil.copyfile(os.path.join(HERE, module), os.path.join(where.model_dir, "code", module))


def write_reports(final: Any, names: list[str], multi: bool, threshold: float, output_dir: str, model_dir: str) -> None:
    """The classification report and the confusion matrix of the final evaluation.

    The confusion matrix is also written into the model dir, so that it travels in model.tar.gz (the Hub card draws it).
    """
    import numpy as np
    from sklearn.metrics import classification_report, confusion_matrix, multilabel_confusion_matrix

    os.makedirs(output_dir, exist_ok=True)
    logits = logits_of(final.predictions)
    refs = np.asarray(final.label_ids).astype(int)
    if multi:
        preds = (sigmoid(logits) >= threshold).astype(int)
        matrix = multilabel_confusion_matrix(refs, preds).tolist()
        confusion: dict[str, Any] = {"labels": names, "per_label_confusion": dict(zip(names, matrix))}
    else:
        preds = logits.argmax(-1)
        confusion = {"labels": names, "matrix": confusion_matrix(refs, preds, labels=list(range(len(names)))).tolist()}
    report = classification_report(refs, preds, labels=None if multi else list(range(len(names))), target_names=names,
                                   output_dict=True, zero_division=0)
    with open(os.path.join(output_dir, "classification_report.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    for folder in (output_dir, model_dir):
        with open(os.path.join(folder, "confusion_matrix.json"), "w") as fh:
            json.dump(confusion, fh, indent=2)


# ---- when the run fails ---------------------------------------------------------------------------------------
def failure_path() -> str:
    """SageMaker's failure file: SM_OUTPUT_FAILURE (set by its driver), else beside the output data folder."""
    return os.environ.get("SM_OUTPUT_FAILURE") or os.path.join(os.path.dirname(contract.paths().output_dir), "failure")


def failure_reason(exc: BaseException) -> str | None:
    """What the job's FailureReason should say about ``exc``; None for a clean exit or Ctrl-C.

    >>> failure_reason(SystemExit("no train channel"))
    'no train channel'
    >>> failure_reason(ValueError("label value 3 is not in the label map"))
    'ValueError: label value 3 is not in the label map'
    >>> failure_reason(SystemExit(0)) is None
    True
    """
    if isinstance(exc, KeyboardInterrupt):
        return None
    if isinstance(exc, SystemExit):
        if not exc.code:
            return None
        return f"the entry point exited with status {exc.code}" if isinstance(exc.code, int) else str(exc.code)
    return f"{type(exc).__name__}: {exc}"


def clear_failure() -> None:
    """Remove a failure file left by an earlier attempt in the same folder (a resumed local run)."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and os.path.isfile(failure_path()):
        os.remove(failure_path())


def write_failure(exc: BaseException) -> None:
    """Write the reason for ``exc`` into the failure file, so the job says why it failed.

    Without it, SageMaker's driver writes its own traceback there: the command it ran (every hyperparameter) and
    "returned non-zero exit status 1", with the cause only in the log. The first failing process writes; the
    driver does not overwrite an existing file.
    """
    reason = failure_reason(exc)
    if reason is None:
        return
    path = failure_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(redaction.redact(reason)[:FAILURE_LIMIT])  # SageMaker shows it to anyone who may describe the job
    except OSError:  # another process wrote it first, or the folder is read-only: the log still has the traceback
        pass
