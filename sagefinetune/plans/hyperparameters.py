"""The hyperparameters a user sets with ``Job.hyperparameters()``, their defaults, and the checks of their values:
each value at the builder, the rules between them at plan, and what needs the data's classes at plan and fit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.core.console import say
from sagefinetune.entrypoint.contract import EARLY_STOPPING_METRICS, HYPERPARAMETERS, parse_bool, parse_str
from sagefinetune.entrypoint.objective import early_stopping_metric
from sagefinetune.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from sagefinetune.data.labels import LabelMap
    from sagefinetune.data.prepared import Prepared
    from sagefinetune.data.report import DataReport
    from sagefinetune.job import Job

__all__ = ["USER_HYPERPARAMETERS", "DEFAULT_HYPERPARAMETERS", "IMBALANCE_RATIO", "LIBRARY_VALUES", "check_hyperparameter",
           "check_with_labels", "early_stopping_note", "imbalance_note", "checked_at_fit",
           "fit_report"]

#: Hyperparameters a user sets with Job.hyperparameters(); the rest are derived from the Job.
USER_HYPERPARAMETERS = tuple(
    k for k in HYPERPARAMETERS if k not in ("model_name_or_path", "config_overrides", "reinitialize", "labels",
                                             "problem_type", "label_mapping", "text_column", "text_pair_column",
                                             "label_column")
)
#: The learning rate and warmup are left out: the plan chooses them for the model's size (see sagefinetune.facts.defaults).
#: ``max_length="auto"``: the plan chooses it from the train rows' token lengths (see sagefinetune.cost.length).
DEFAULT_HYPERPARAMETERS: Mapping[str, Any] = MappingProxyType({"epochs": 3, "batch_size": 32, "max_length": "auto"})
#: Values the library takes for a hyperparameter beside the entry point's type: resolved before launch.
LIBRARY_VALUES: Mapping[str, tuple[str, ...]] = MappingProxyType({"max_length": ("auto",)})


def check_hyperparameter(name: str, value: Any) -> None:
    """A hyperparameter a user may set, of the right type and within its rule; else a ConfigError with the fix."""
    if name not in USER_HYPERPARAMETERS:
        raise ConfigError(f"unknown hyperparameter {name!r}{did_you_mean(name, USER_HYPERPARAMETERS)} "
                          f"Fix: one of {', '.join(USER_HYPERPARAMETERS)} (see the hyperparameters page).")
    if name == "class_weights":
        check_class_weights(value)
        return
    if name == "early_stopping_metric" and value not in EARLY_STOPPING_METRICS:
        prefixed = f"eval_{value}"
        close = (f"; did you mean {prefixed!r}?" if prefixed in EARLY_STOPPING_METRICS
                 else did_you_mean(str(value), EARLY_STOPPING_METRICS) or ".")
        raise ConfigError(f"early_stopping_metric={value!r} is not a metric of the run{close} Fix: 'auto' (eval_f1; "
                          f"eval_f1_micro for multi-label) or one of {', '.join(EARLY_STOPPING_METRICS[1:])}.")
    param = HYPERPARAMETERS[name]
    extra = LIBRARY_VALUES.get(name, ())
    if isinstance(value, str) and value in extra:
        return
    default = DEFAULT_HYPERPARAMETERS.get(name, param.default)
    rule = param.rule + "".join(f", or {v!r}" for v in extra)
    if isinstance(value, float) and not math.isfinite(value) and param.parse is not parse_str:
        raise ConfigError(f"hyperparameter {name}={value!r} is not a finite number; it must be {rule}. "
                          f"Fix: .hyperparameters({name}={default!r}).")
    wrong_type = isinstance(value, str) and param.parse is not parse_str
    try:
        parsed = None if wrong_type else param.parse(value)
    except (TypeError, ValueError):
        wrong_type = True
    if wrong_type:
        raise ConfigError(f"hyperparameter {name}={value!r} has the wrong type; {param.help} "
                          f"(default {default!r}). Fix: .hyperparameters({name}={default!r}).")
    if param.check is not None and not param.check(parsed):
        raise ConfigError(f"hyperparameter {name}={value!r} must be {rule}. "
                          f"Fix: .hyperparameters({name}=<a value {rule}>), e.g. {default!r}.")


# ---- class_weights and early_stopping ----------------------------------------------------------------------------
#: At fit, a train split whose largest class has more than this many times the rows of its smallest is pointed to
#: class_weights.
IMBALANCE_RATIO = 5.0
_WEIGHTS_FIX = "Fix: class_weights='balanced', or a dict of class name -> weight such as {'neutral': 3.0}."


def check_class_weights(value: Any) -> None:
    """``None``, ``"balanced"`` or a non-empty mapping of class names (text) to finite weights > 0."""
    if value is None or value == "balanced":
        return
    if isinstance(value, str):
        raise ConfigError(f"class_weights={value!r} is not 'balanced'{did_you_mean(value, ['balanced'])} {_WEIGHTS_FIX}")
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"class_weights must be 'balanced' or a mapping of class name -> weight; got {value!r}. "
                          f"{_WEIGHTS_FIX}")
    names = [k for k in value if not isinstance(k, str)]
    if names:
        raise ConfigError(f"class_weights keys are class names (text, as in the label map); got {names!r}. "
                          f"{_WEIGHTS_FIX}")
    bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))
           or not math.isfinite(v) or v <= 0}
    if bad:
        raise ConfigError(f"class weights must be finite numbers > 0; got {bad}. Fix: a weight such as 3.0 for a class "
                          "to count 3x in the loss, 1.0 to leave it as it is.")


def check_with_labels(hyperparameters: Mapping[str, Any], label_map: LabelMap) -> None:
    """The class names in ``class_weights`` are classes of ``label_map``, and ``early_stopping_metric`` is computed
    for its problem type: at plan when the Job names its labels, at fit once the data has (before any upload)."""
    weights = hyperparameters.get("class_weights")
    if isinstance(weights, Mapping):
        names = list(label_map.names_)
        for name in weights:
            if name not in names:
                raise ConfigError(f"class_weights names {name!r}, which is not a class of the label map "
                                  f"{names}{did_you_mean(name, names)} Fix: name one of the classes.")
    if hyperparameters.get("early_stopping"):
        try:
            early_stopping_metric(hyperparameters.get("early_stopping_metric", "auto"), label_map.is_multi_label)
        except ValueError as exc:
            raise ConfigError(f"{exc}. Fix: .hyperparameters(early_stopping_metric='auto').") from None


def early_stopping_note(job: Job) -> str | None:
    """What ``early_stopping`` will do, said in the plan; a ConfigError when the other settings rule it out."""
    hp = job.hyperparameters_
    patience = hp.get("early_stopping")
    if not patience:
        return None
    if not parse_bool(hp.get("eval_each_epoch", True)):
        raise ConfigError(f"early_stopping={patience} needs evaluations; eval_each_epoch=False turns them off. "
                          "Fix: .hyperparameters(eval_each_epoch=True), or early_stopping=0.")
    if job.dataset.is_remote and "validation" not in dict(job.dataset.source.kwargs):
        raise ConfigError(f"early_stopping={patience} watches a validation channel, and this from_s3 data has none "
                          "(the test split stays unseen until the final score). Fix: "
                          "Dataset.from_s3(train=..., validation=..., test=...), or early_stopping=0.")
    metric = hp.get("early_stopping_metric", "auto")
    if job.label_map is not None:
        metric = early_stopping_metric(metric, job.label_map.is_multi_label)[0]
    elif metric == "auto":
        metric = "eval_f1 (eval_f1_micro for multi-label)"
    every = f"every {hp['save_steps']} steps" if hp.get("save_steps") else "every epoch"
    return (f"early_stopping={patience}: evaluates {every} on the validation split (10% of train is set aside when "
            f"the data has none) and stops after {patience} evaluations without a better {metric}; the model is "
            "the best checkpoint")


def imbalance_note(prepared: Prepared, hyperparameters: Mapping[str, Any]) -> str | None:
    """At fit: a train split whose largest class has over 5x the rows of its smallest, when class_weights is unset."""
    if hyperparameters.get("class_weights"):
        return None
    counts = prepared.class_counts("train")
    if len(counts) < 2:
        return None
    (big, most), (small, least) = max(counts.items(), key=lambda kv: kv[1]), min(counts.items(), key=lambda kv: kv[1])
    if least and most / least <= IMBALANCE_RATIO:
        return None
    ratio = f"{most / least:.1f}:1" if least else "none at all"
    what = "labels" if prepared.label_map.is_multi_label else "classes"
    return (f"the train split's {what} are imbalanced: {big!r} has {most} rows, {small!r} {least} ({ratio}, over "
            f"{IMBALANCE_RATIO:g}:1); an unweighted loss learns to neglect the rare ones. Fix: "
            ".hyperparameters(class_weights='balanced') weighs each class by the inverse of its share (or "
            f"{{{small!r}: <weight>, ...}}), and judge the run on eval_f1 (macro F1), not accuracy.")


def checked_at_fit(job: Job, prepared: Prepared) -> tuple[str, ...]:
    """The checks that need the data's classes, and what fit says about the data: loading's notes and imbalance."""
    check_with_labels(job.hyperparameters_, prepared.label_map)
    imbalance = imbalance_note(prepared, job.hyperparameters_)
    report = fit_report(prepared)
    say("data report: " + "\n  ".join(report.lines()))
    return prepared.notes + ((imbalance,) if imbalance else ()) + tuple(report.warnings())


def fit_report(prepared: Prepared) -> DataReport:
    """The data report on every prepared row (see :mod:`sagefinetune.data.report`)."""
    from sagefinetune.data.report import report_rows

    texts, labels = {}, {}
    for split, table in prepared.tables.items():
        text = table["text"].to_pylist()
        if "text_pair" in table.column_names:
            text = [f"{a} {b}" for a, b in zip(text, table["text_pair"].to_pylist())]
        texts[split], labels[split] = text, table["label"].to_pylist()
    return report_rows(texts, labels, "every row, as prepared", label_names=list(prepared.label_map.names_))
