"""A run's curves, read back from the metric lines its entry point printed, and drawn with matplotlib.

The same lines are in a local run's ``train.log`` and in a SageMaker job's CloudWatch log, so both kinds of run give
the same :class:`Curves`: what :func:`sagefinetune.runtime.diagnose.diagnose` reads and :meth:`TrainingRun.plot
<sagefinetune.TrainingRun.plot>` draws.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sagefinetune.core.deps import require
from sagefinetune.entrypoint import contract

__all__ = ["Point", "Curves", "plot_curves"]

_START = re.compile(r"\[sagefinetune\] transformers \S+, torch \S+, (?P<procs>\d+) process\(es\), "
                    r"(?:cuda x(?P<gpus>\d+)|cpu), precision (?P<precision>\w+)")
_TRAINING_ENDS = "train_runtime"  # the Trainer's summary: what follows it is the final evaluation
_IGNORED = ("epoch", "total_flos")


@dataclass(frozen=True)
class Point:
    """One logged value: the optimizer step, the epoch (fractional) and the value (NaN and inf kept)."""

    step: int
    epoch: float | None
    value: float


@dataclass(frozen=True)
class Curves:
    """What a run logged.

    Attributes:
        series: per metric name, the values logged during training, in step order: ``loss``, ``grad_norm``,
            ``learning_rate`` every few steps; ``eval_loss``, ``eval_accuracy``, ... after every epoch.
        final: the training summary (``train_runtime``, ``train_samples_per_second``, ``train_loss``) and the final
            evaluation (``eval_*``), logged once training ended.
        label_counts: per split, rows per class.
        gpus: GPUs of each process (0 on CPU). precision: fp32, fp16 or bf16.
    """

    series: Mapping[str, tuple[Point, ...]] = field(default_factory=lambda: MappingProxyType({}))
    final: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    label_counts: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: MappingProxyType({}))
    gpus: int = 0
    processes: int = 1
    precision: str | None = None

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Curves:
        """Read the entry point's lines; a log that holds a resumed run keeps the values of the run that resumed.

        Example:
            >>> from sagefinetune.entrypoint.contract import metric_line
            >>> c = Curves.from_lines([metric_line("loss", 1.6, 1, 0.1), metric_line("loss", 0.4, 9, 0.9),
            ...                        metric_line("train_runtime", 3.0, 10, 1.0), metric_line("eval_f1", 0.9, 10, 1.0)])
            >>> [p.value for p in c.series["loss"]], c.final["eval_f1"]
            ([1.6, 0.4], 0.9)
        """
        series: dict[str, list[Point]] = {}
        final: dict[str, float] = {}
        counts: dict[str, dict[str, int]] = {}
        hardware: dict[str, Any] = {}
        ended = False
        for line in lines:
            start = _START.search(line)
            if start:  # a (re)start of the entry point: the final values are those of the last process
                ended, final = False, {}
                hardware = {"gpus": int(start["gpus"] or 0), "processes": int(start["procs"]),
                            "precision": start["precision"]}
                continue
            m = contract.LABEL_COUNTS_LINE.search(line)
            if m:
                counts[m["split"]] = {str(k): int(v) for k, v in json.loads(m["counts"]).items()}
                continue
            m = contract.METRIC_LINE.search(line)
            if not m or m["name"] in _IGNORED:
                continue
            name, value = m["name"], float(m["value"])
            if name == _TRAINING_ENDS:
                ended = True
            if ended:
                final[name] = value
                continue
            point = Point(int(m["step"]), float(m["epoch"]) if m["epoch"] else None, value)
            kept = series.setdefault(name, [])
            while kept and kept[-1].step >= point.step:  # a resumed run logs these steps again: the newer win
                kept.pop()
            kept.append(point)
        return cls(MappingProxyType({k: tuple(v) for k, v in series.items()}), MappingProxyType(final),
                   MappingProxyType({k: MappingProxyType(v) for k, v in counts.items()}), **hardware)

    def values(self, name: str) -> list[float]:
        return [p.value for p in self.series.get(name, ())]

    @property
    def evaluated_epochs(self) -> list[Point]:
        """The per-epoch evaluations (their ``eval_loss`` points)."""
        return list(self.series.get("eval_loss", ()))

    @property
    def last_step(self) -> int:
        return max((p.step for pts in self.series.values() for p in pts), default=0)

    def epoch_ends(self) -> list[int]:
        """Steps at which an epoch ended, from the epoch values of the logged points."""
        points = sorted((p for pts in self.series.values() for p in pts if p.epoch is not None), key=lambda p: p.step)
        ends, seen = [], 0
        for p in points:
            assert p.epoch is not None
            whole = math.floor(p.epoch + 1e-6)
            if whole > seen:
                ends.append(p.step)
                seen = whole
        return ends

    def epoch_means(self, name: str = "loss") -> list[float]:
        """The mean of a step-logged series within each epoch (epoch k covers (k-1, k])."""
        by_epoch: dict[int, list[float]] = {}
        for p in self.series.get(name, ()):
            if p.epoch is not None and p.step > 1:  # the first step's loss is the untrained model's
                by_epoch.setdefault(max(1, math.ceil(p.epoch - 1e-6)), []).append(p.value)
        return [sum(v) / len(v) for _, v in sorted(by_epoch.items())]


def _metric_names(curves: Curves) -> list[str]:
    shown = ("eval_accuracy", "eval_f1", "eval_f1_micro", "eval_f1_macro", "eval_mcc", "eval_subset_accuracy")
    return [n for n in shown if n in curves.series or n in curves.final]


def plot_curves(curves: Curves, path: str | Path | None = None, *, title: str = "", checkpoints: Sequence[int] = ()) -> Any:
    """Training and evaluation loss, and the evaluation metrics, against optimizer steps.

    Epoch ends are dotted lines; the final model (the last step, which is the model saved) is a solid line; the
    checkpoints kept in the run folder are triangles on the step axis; the final evaluation is a star.

    Returns:
        The matplotlib Figure (saved to ``path`` when given).
    """
    require("matplotlib", "plot the curves")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2))
    loss_ax, metric_ax = fig.subplots(1, 2)
    loss = curves.series.get("loss", ())
    loss_ax.plot([p.step for p in loss], [p.value for p in loss], label="training loss", color="tab:blue")
    _series(loss_ax, curves, "eval_loss", "evaluation loss", "tab:orange")
    loss_ax.set_ylabel("loss")
    for name, color in zip(_metric_names(curves), ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:gray", "tab:olive")):
        _series(metric_ax, curves, name, name, color)
    metric_ax.set_ylabel("evaluation metric")
    for ax in (loss_ax, metric_ax):
        first = ax is loss_ax  # the markers are the same on both: their legend once
        for i, step in enumerate(curves.epoch_ends()):
            ax.axvline(step, color="0.75", linestyle=":", label="epoch end" if i == 0 and first else None)
        if curves.last_step:
            ax.axvline(curves.last_step, color="0.3", linewidth=1,
                       label=f"model saved (step {curves.last_step})" if first else None)
        if checkpoints:
            ax.plot(list(checkpoints), [0] * len(checkpoints), "^", color="0.3", transform=ax.get_xaxis_transform(),
                    clip_on=False, label="checkpoints kept" if first else None)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def _series(ax: Any, curves: Curves, name: str, label: str, color: str) -> None:
    points = curves.series.get(name, ())
    if points:
        ax.plot([p.step for p in points], [p.value for p in points], "o-", label=label, color=color)
    if name in curves.final:
        ax.plot([curves.last_step], [curves.final[name]], "*", markersize=12, color=color,
                label=f"final {label} {curves.final[name]:.4g}")
