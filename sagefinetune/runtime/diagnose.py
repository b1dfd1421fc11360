"""What went wrong in a run, read from its own curves: the checks SageMaker Debugger's rules made, on our logs.

:meth:`TrainingRun.diagnose() <sagefinetune.TrainingRun.diagnose>` returns a :class:`Diagnosis`; ``fit()`` prints
it when the run ends. Each :class:`Finding` carries the numbers it rests on and what to try. The checks:

- ``overfitting``: the evaluation loss rose for two or more evaluations in a row while the training loss fell.
- ``loss_not_decreasing``: the training loss at the end is no lower than at the start.
- ``diverged``: a NaN or infinite loss, a loss that exploded, or a zero gradient norm (nothing learns any more).
- ``majority_baseline``: the final accuracy is no better than always predicting the most common class.
- ``class_imbalance``: the largest class of the training split is 10x the smallest or more.
- ``low_throughput``: on GPUs, training ran much slower than expected for the GPU (see :data:`GPU_REFERENCE`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sagefinetune.entrypoint.redaction import redact
from sagefinetune.runtime.curves import Curves

__all__ = ["Finding", "Diagnosis", "diagnose", "GPU_REFERENCE"]

IMBALANCE_RATIO = 10.0
EXPLODED = 4.0  # a loss this many times the first one has exploded
FLAT = 0.95  # the last quarter's mean loss above this share of the first quarter's: not decreasing
SLOW = 0.25  # below this share of the reference speed: low throughput

#: Training samples per second of one GPU for a BERT-base-sized model (110M parameters) at 128 tokens, mixed precision,
#: as published in NVIDIA's and Hugging Face's benchmark tables (rounded down). The check scales it by the run's
#: max_length; the model's size is not known from the log, so only runs far below it (< 25%) are reported. When the
#: plan carries a calibrated estimate (``plan.estimate``), its predicted seconds are used instead.
GPU_REFERENCE: Mapping[str, float] = MappingProxyType({
    "V100": 200.0, "T4": 60.0, "A10G": 150.0, "L4": 120.0, "L40S": 300.0, "A100": 450.0, "H100": 800.0, "H200": 850.0,
})


@dataclass(frozen=True)
class Finding:
    """One problem seen in a run.

    Attributes:
        kind: ``overfitting``, ``loss_not_decreasing``, ``diverged``, ``majority_baseline``, ``class_imbalance`` or
            ``low_throughput``.
        message: what was seen, in a sentence.
        evidence: the numbers it rests on.
        advice: what to try, most likely first.
    """

    kind: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    advice: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "evidence": dict(self.evidence), "advice": list(self.advice)}

    def __str__(self) -> str:
        return "\n".join([f"{self.kind}: {self.message}"] + [f"    try: {a}" for a in self.advice])


@dataclass(frozen=True)
class Diagnosis:
    """The findings of one run (empty when nothing looked wrong); iterable, and printable as a short report."""

    run: str
    findings: tuple[Finding, ...] = ()
    checked: tuple[str, ...] = ()  # the checks the log had the data for

    def __iter__(self) -> Any:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __bool__(self) -> bool:
        return bool(self.findings)

    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "findings": [f.to_dict() for f in self.findings], "checked": list(self.checked)}

    def __str__(self) -> str:
        if not self.checked:
            return f"diagnosis of {self.run}: nothing to check (no metric lines in its log)"
        if not self.findings:
            return f"diagnosis of {self.run}: no problem found (checked: {', '.join(self.checked)})"
        return "\n".join([f"diagnosis of {self.run}: {len(self.findings)} finding(s)"] + [f"  {f}" for f in self.findings])


def _r(x: float) -> float:
    return round(x, 4) if math.isfinite(x) else x


# ---- the checks: each returns a Finding or None, and says whether the log had what it needs ----------------------
def check_diverged(c: Curves) -> Finding | None:
    losses, grads = c.values("loss"), c.values("grad_norm")
    bad = [(n, v) for n in ("loss", "grad_norm", "eval_loss") for v in c.values(n) if not math.isfinite(v)]
    try_ = ("a learning rate 10x smaller", "precision='fp32' (or bf16) if fp16 overflowed",
            "warmup=0.1 so the first steps are gentler")
    if bad:
        return Finding("diverged", f"the {bad[0][0]} became {bad[0][1]} ({len(bad)} non-finite values): training diverged.",
                       {"non_finite": len(bad), "first": bad[0][0], "losses": [_r(v) for v in losses[:8]]}, try_)
    if len(losses) >= 2 and losses[0] > 0 and max(losses[1:]) > EXPLODED * losses[0]:
        peak = max(losses[1:])
        return Finding("diverged", f"the training loss exploded from {losses[0]:.3g} to {peak:.3g} "
                       f"({peak / losses[0]:.0f}x the first value).",
                       {"first_loss": _r(losses[0]), "peak_loss": _r(peak), "last_loss": _r(losses[-1])}, try_)
    tail = grads[len(grads) // 2:]
    if len(tail) >= 3 and all(g < 1e-8 for g in tail):
        return Finding("diverged", f"the gradient norm was 0 for the last {len(tail)} logs: the model stopped learning "
                       "(saturated or dead units after too large steps).",
                       {"grad_norms": [_r(g) for g in grads], "last_loss": _r(losses[-1]) if losses else None}, try_)
    return None


def check_loss_not_decreasing(c: Curves) -> Finding | None:
    losses = [v for v in c.values("loss") if math.isfinite(v)]
    if len(losses) < 4:
        return None
    q = max(1, len(losses) // 4)
    first, last = sum(losses[:q]) / q, sum(losses[-q:]) / q
    if last < FLAT * first:
        return None
    lr = max(c.values("learning_rate"), default=float("nan"))
    if lr <= 1e-6:
        rate = f"a larger learning rate: {lr:.2g} is tiny; 2e-5..1e-4 is usual for fine-tuning"
    elif lr >= 1e-3:
        rate = f"a smaller learning rate: {lr:.2g} is large; 2e-5..1e-4 is usual for fine-tuning"
    else:
        rate = f"another learning rate (the peak was {lr:.2g}): tune it with job.tune(...)"
    return Finding("loss_not_decreasing",
                   f"the training loss did not decrease: {first:.3g} over the first quarter of logs, {last:.3g} over the "
                   "last quarter.", {"first_quarter_loss": _r(first), "last_quarter_loss": _r(last), "peak_lr": _r(lr)},
                   (rate, "more epochs or more rows", "check that the labels match the texts (a shuffled label "
                    "column cannot be learned)"))


def check_overfitting(c: Curves) -> Finding | None:
    evals = c.values("eval_loss")
    train = c.epoch_means("loss")
    if len(evals) < 3:
        return None
    for i in range(len(evals) - 2):
        rises = 0
        while i + rises + 1 < len(evals) and evals[i + rises + 1] > evals[i + rises]:
            rises += 1
        falling = len(train) > i + rises and train[i + rises] < train[i]
        if rises >= 2 and falling:
            best = min(range(len(evals)), key=evals.__getitem__)
            return Finding("overfitting",
                           f"the evaluation loss rose for {rises} evaluations in a row (epoch {i + 1} to {i + rises + 1}: "
                           f"{evals[i]:.3g} -> {evals[i + rises]:.3g}) while the training loss fell ({train[i]:.3g} -> "
                           f"{train[i + rises]:.3g}).",
                           {"eval_loss": [_r(v) for v in evals], "train_loss_per_epoch": [_r(v) for v in train],
                            "best_epoch": best + 1},
                           (f"epochs={best + 1} (the evaluation loss was lowest after epoch {best + 1})",
                            "more training rows", "weight_decay=0.1, or more dropout: .model(..., hidden_dropout_prob=0.2)",
                            "a smaller learning rate"))
    return None


def _eval_split(c: Curves) -> str | None:
    return next((s for s in ("test", "validation") if s in c.label_counts), None)


def check_majority_baseline(c: Curves, multi_label: bool, loss_problem: Finding | None = None) -> Finding | None:
    """No better than the majority class. ``loss_problem`` (a diverged or flat loss found on the same run) explains it
    when there is one, and the advice says so only then."""
    split = _eval_split(c)
    accuracy = c.final.get("eval_accuracy")
    if multi_label or split is None or accuracy is None:
        return None
    counts = c.label_counts[split]
    total = sum(counts.values())
    if not total:
        return None
    majority, rows = max(counts.items(), key=lambda kv: kv[1])
    share = rows / total
    if accuracy > share + 0.01:
        return None
    return Finding("majority_baseline",
                   f"accuracy {accuracy:.3f} is no better than always answering '{majority}' ({share:.3f} of the "
                   f"{split} split): the model has not learned to tell the classes apart.",
                   {"eval_accuracy": _r(accuracy), "majority_class": majority, "majority_share": _r(share),
                    "split": split, "macro_f1": _r(c.final.get("eval_f1", float("nan")))},
                   majority_advice(loss_problem))


def majority_advice(loss_problem: Finding | None) -> tuple[str, ...]:
    """What to try for a run no better than the majority class: the loss finding first when there is one."""
    rest = ("more epochs or more rows, or another learning rate (job.tune(...) finds one)",
            "if the classes are imbalanced: balance the training rows, and tune on eval_f1")
    if loss_problem is None:
        return rest
    return (f"the {loss_problem.kind} finding above explains it: fix that first",) + rest


def check_imbalance(c: Curves) -> Finding | None:
    counts = c.label_counts.get("train")
    if not counts or len(counts) < 2:
        return None
    big, small = max(counts.items(), key=lambda kv: kv[1]), min(counts.items(), key=lambda kv: kv[1])
    ratio = big[1] / small[1] if small[1] else math.inf
    if ratio < IMBALANCE_RATIO:
        return None
    return Finding("class_imbalance",
                   f"the training split is severely imbalanced: '{big[0]}' has {big[1]} rows, '{small[0]}' {small[1]} "
                   f"({ratio:.0f}x).", {"train_counts": dict(counts), "ratio": _r(ratio)},
                   ("weigh the loss by class: .hyperparameters(class_weights='balanced')",
                    "more rows of the rare classes, or fewer of the common one (Dataset.filter / sample)",
                    "judge and tune on macro F1 (eval_f1), not accuracy", "check the per-class recall in "
                    "output/data/classification_report.json"))


def check_throughput(c: Curves, instance_gpu: str | None, max_length: int | None, estimate: Any) -> Finding | None:
    speed, runtime = c.final.get("train_samples_per_second"), c.final.get("train_runtime")
    if not c.gpus or speed is None or runtime is None:
        return None
    if estimate is not None and getattr(estimate, "seconds_high", None):
        expected = float(estimate.seconds_high)
        if runtime <= 1.5 * expected:
            return None
        evidence: dict[str, Any] = {"train_runtime": _r(runtime), "estimate_high_seconds": _r(expected),
                                    "basis": getattr(estimate, "basis", "")}
        seen = f"training took {runtime:.0f} s, {runtime / expected:.1f}x the high end of the estimate ({expected:.0f} s)"
    else:
        per_gpu = GPU_REFERENCE.get(instance_gpu or "")
        if per_gpu is None:
            return None
        expected = per_gpu * c.gpus * c.processes * 128 / max(128, max_length or 128)
        if speed >= SLOW * expected:
            return None
        evidence = {"train_samples_per_second": _r(speed), "reference_samples_per_second": _r(expected),
                    "gpu": instance_gpu, "gpus": c.gpus * c.processes, "basis": "GPU_REFERENCE (BERT-base, 128 tokens)"}
        seen = f"{speed:.1f} samples/s on {c.gpus * c.processes} x {instance_gpu}, under {SLOW:.0%} of the reference {expected:.0f}"
    return Finding("low_throughput", f"low throughput: {seen}.", evidence,
                   ("a larger batch_size (the GPU is likely idle between small batches)",
                    "max_length no longer than the texts need (pad_to_max_length=False)",
                    f"precision {'bf16/fp16' if c.precision == 'fp32' else 'as chosen'}; check the data loading is not "
                    "the bottleneck"))


def diagnose(curves: Curves, *, run: str = "", multi_label: bool = False, gpu: str | None = None,
             max_length: int | None = None, estimate: Any = None) -> Diagnosis:
    """Every check on one run's curves.

    Args:
        curves: from :meth:`Curves.from_lines`.
        multi_label: the majority-class check applies to single-label runs only.
        gpu: the instance's GPU model (``"A10G"``), for the throughput check.
        max_length: the run's max_length, for the throughput reference.
        estimate: the plan's estimate (``plan.estimate``) when there is one.

    Example:
        A loss that stays where it started, and an accuracy of the majority class's share:

            >>> from sagefinetune.entrypoint.contract import label_counts_line, metric_line
            >>> lines = [label_counts_line("test", {"pos": 50, "neg": 50})]
            >>> lines += [metric_line("loss", 0.69, step, step / 10) for step in range(1, 41)]
            >>> lines += [metric_line("train_runtime", 60.0, 40, 4.0), metric_line("eval_accuracy", 0.5, 40, 4.0)]
            >>> found = diagnose(Curves.from_lines(lines), run="demo")
            >>> found.kinds()
            ['loss_not_decreasing', 'majority_baseline']
            >>> found.findings[1].advice[0]
            'the loss_not_decreasing finding above explains it: fix that first'
    """
    found: list[Finding | None] = []
    checked: list[str] = []
    loss_problem = check_diverged(curves)
    if curves.series.get("loss"):
        checked += ["diverged", "loss_not_decreasing"]
        if loss_problem is None:
            loss_problem = check_loss_not_decreasing(curves)
    found.append(loss_problem)
    if len(curves.values("eval_loss")) >= 3:
        checked.append("overfitting")
        found.append(check_overfitting(curves))
    if _eval_split(curves) and "eval_accuracy" in curves.final and not multi_label:
        checked.append("majority_baseline")
    found.append(check_majority_baseline(curves, multi_label, loss_problem))
    if "train" in curves.label_counts:
        checked.append("class_imbalance")
    found.append(check_imbalance(curves))
    if curves.gpus:
        checked.append("low_throughput")
        found.append(check_throughput(curves, gpu, max_length, estimate))
    return Diagnosis(run, tuple(f for f in found if f is not None), tuple(checked))


def report(run: Any) -> None:
    """Print a finished run's diagnosis to stderr (what ``fit()`` does at the end); never raises."""
    import sys

    if getattr(run, "status", "Completed") != "Completed":
        return
    try:
        text = str(run.diagnose())
    except Exception as exc:  # a diagnosis must never cost the user the run it describes
        text = f"diagnosis of {run.name} skipped: {type(exc).__name__}: {exc}"
    for line in text.splitlines():
        print(f"[sagefinetune] {redact(line)}", file=sys.stderr, flush=True)
