"""The pipeline's gate: a threshold on an evaluation metric. Pure: the same check runs on SageMaker and here.

    >>> gate = Condition.parse({"f1": 0.85})[0]
    >>> gate.metric, gate.parameter, gate.check({"eval_f1": 0.812})
    ('eval_f1', 'MinEvalF1', 'eval_f1 = 0.812 is 0.038 below the threshold 0.85')
    >>> gate.check({"eval_f1": 0.9}) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagefinetune.errors import ConfigError, did_you_mean

#: What evaluation.json holds: single-label and multi-label scores (see entrypoint/metrics/classification.py).
SINGLE_LABEL = ("eval_accuracy", "eval_f1", "eval_precision", "eval_recall", "eval_mcc", "eval_loss")
MULTI_LABEL = ("eval_f1_micro", "eval_f1_macro", "eval_precision_micro", "eval_recall_micro", "eval_subset_accuracy",
               "eval_loss")
METRICS = tuple(dict.fromkeys(SINGLE_LABEL + MULTI_LABEL))


@dataclass(frozen=True)
class Condition:
    """``metric >= threshold`` (``<=`` for a loss), with the pipeline parameter that holds the threshold."""

    metric: str
    threshold: float

    @property
    def higher_is_better(self) -> bool:
        return not self.metric.endswith("loss")

    @property
    def parameter(self) -> str:
        """The pipeline parameter's name: ``MinEvalF1``, ``MaxEvalLoss``."""
        words = "".join(w.capitalize() for w in self.metric.split("_"))
        return ("Min" if self.higher_is_better else "Max") + words

    @property
    def relation(self) -> str:
        return ">=" if self.higher_is_better else "<="

    def passes(self, value: float, threshold: float | None = None) -> bool:
        limit = self.threshold if threshold is None else threshold
        return value >= limit if self.higher_is_better else value <= limit

    def check(self, metrics: Mapping[str, float], threshold: float | None = None) -> str | None:
        """None when the metric clears the threshold; else what missed, and by how much."""
        limit = self.threshold if threshold is None else threshold
        if self.metric not in metrics:
            return (f"{self.metric} is not among the evaluation's metrics {sorted(metrics)}. "
                    f"Fix: a condition on one of those.")
        value = float(metrics[self.metric])
        if self.passes(value, limit):
            return None
        side = "below" if self.higher_is_better else "above"
        return f"{self.metric} = {value:.4g} is {abs(value - limit):.3g} {side} the threshold {limit:.4g}"

    def __str__(self) -> str:
        return f"{self.metric} {self.relation} {self.threshold:g}"

    @staticmethod
    def parse(condition: Any, problem_type: str | None = None) -> tuple[Condition, ...]:
        """``{"eval_f1": 0.85}`` (or ``{"f1": 0.85}``) into checked conditions; several metrics must all pass."""
        if not isinstance(condition, Mapping) or not condition:
            raise ConfigError(f"condition must map a metric to its threshold; got {condition!r}. "
                              "Fix: condition={'eval_f1': 0.85}.")
        known = {"multi_label_classification": MULTI_LABEL, "single_label_classification": SINGLE_LABEL}.get(
            problem_type or "", METRICS)
        out = []
        for name, threshold in condition.items():
            metric = name if not isinstance(name, str) or name.startswith("eval_") else f"eval_{name}"
            if metric not in known:
                kind = {"multi_label_classification": " of a multi-label job"}.get(problem_type or "", "")
                example = "eval_f1_micro" if known is MULTI_LABEL else "eval_f1"
                raise ConfigError(f"condition on {name!r}: the evaluation step{kind} reports {', '.join(known)}"
                                  f"{did_you_mean(str(metric), known)} Fix: condition={{{example!r}: 0.85}}.")
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ConfigError(f"the threshold for {metric} must be a number; got {threshold!r}. "
                                  f"Fix: condition={{{metric!r}: 0.85}}.")
            bounded = metric != "eval_loss"
            low = -1.0 if metric == "eval_mcc" else 0.0
            if bounded and not low <= threshold <= 1:
                raise ConfigError(f"{metric} lies in [{low:g}, 1]; a threshold of {threshold!r} can never be met "
                                  f"(or always is). Fix: a fraction, e.g. condition={{{metric!r}: 0.85}}.")
            out.append(Condition(metric, float(threshold)))
        return tuple(out)


def recheck(conditions: tuple[Condition, ...], problem_type: str | None) -> None:
    """Once the data is read and the problem type known: every condition names a metric the evaluation reports."""
    Condition.parse({c.metric: c.threshold for c in conditions}, problem_type)
