"""Time and cost known before launch: ``plan.estimate``. Pure: reads only the fitted numbers shipped in the package.

SageMaker plans are estimated by the throughput model of :mod:`sagefinetune.cost.throughput`, calibrated on the 25
V100 runs of the AWS SageMaker Hugging Face benchmark (:mod:`sagefinetune.cost.calibration`); other GPUs and mixed precision are *extrapolated* by published speeds.
Local plans are estimated from this machine's own measured speed (:func:`sagefinetune.speed.measure_speed`), and
until it is measured from a rough speed built in for this CPU (:mod:`sagefinetune.cost.cpu_speed`).

    >>> import sagefinetune as sft
    >>> job = sft.Job.from_dataset(sft.Dataset.example("imdb")).hyperparameters(max_length=256)
    >>> est = job.plan(instance="ml.p3.16xlarge", nodes=2).estimate
    >>> est.kind, est.seconds > 0, est.seconds_low < est.seconds < est.seconds_high
    ('extrapolated', True, True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from sagefinetune.core.units import human_seconds
from sagefinetune.cost.search import NODES, Candidate, setups, versus_cheapest
from sagefinetune.cost.throughput import Calibration, Hardware, model_size, optimizer_steps, relative_speed, seconds
from sagefinetune.cost.workload import DataShape, data_shape, epochs_run, workload
from sagefinetune.facts.instances import SPOT_FACTOR, lookup

if TYPE_CHECKING:
    from sagefinetune.cost.local_speed import LocalSpeed
    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["Estimate", "estimate_plan", "calibration", "calibration_data", "human_seconds", "timed_setups", "LOCAL_RANGE"]

LOCAL_RANGE = (0.8, 1.25)  # the local estimate's target: within 25% of the measured run


@cache
def calibration_data() -> dict[str, Any]:
    """``cost/calibration.json``: the fitted numbers, the leave-one-out table and the benchmark's facts."""
    text = resources.files("sagefinetune.cost").joinpath("calibration.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def calibration() -> Calibration:
    return Calibration.from_dict(calibration_data()["calibration"])


@dataclass(frozen=True)
class Estimate:
    """Predicted training time and cost of a plan, each with a low and a high value, and what it rests on.

    Attributes:
        seconds: predicted training seconds (SageMaker's TrainingTimeInSeconds; locally the entry point's run time),
            ``None`` when no time can be given (``basis`` says why).
        billable_seconds: seconds billed on demand (locally 0).
        cost: USD on demand: billable seconds / 3600 x price per hour x nodes. ``spot_cost`` is the same at the spot
            discount (an estimate: spot prices move).
        kind: ``"calibrated"`` (the benchmark's GPU and precision: V100, fp32), ``"extrapolated"`` (another GPU or precision, by
            published speeds), ``"measured here"`` (this machine's probe), ``"rough"`` (built in for this CPU, until a probe
            measures it: :mod:`sagefinetune.cost.cpu_speed`) or ``"none"``.
        basis: what the estimate rests on, in words.
        steps: optimizer steps. train_rows: rows trained on per epoch.
        advice: where scaling stops paying, the plan next to the cheapest setup of the search over every GPU type
            and 1-8 nodes (:mod:`sagefinetune.cost.search`), and the learning rate for a growing global batch.
        ceiling: with ``early_stopping``, why the time and cost are a ceiling (the job may stop earlier); else "".
    """

    seconds: float | None
    seconds_low: float | None
    seconds_high: float | None
    billable_seconds: float | None
    cost: float | None
    cost_low: float | None
    cost_high: float | None
    spot_cost: float | None
    basis: str
    kind: str = "none"
    steps: int | None = None
    train_rows: int | None = None
    advice: tuple[str, ...] = field(default=())
    ceiling: str = ""

    @classmethod
    def unavailable(cls, reason: str) -> Estimate:
        return cls(None, None, None, None, None, None, None, None, f"no time: {reason}", "none")

    @classmethod
    def from_seconds(cls, value: float, low: float, high: float, *, price_nodes: float, basis: str, kind: str,
                     steps: int, train_rows: int) -> Estimate:
        """``price_nodes``: USD per hour for all nodes together (0 locally)."""
        def usd(s: float) -> float:
            return s / 3600 * price_nodes

        return cls(value, value * low, value * high, value if price_nodes else 0.0, usd(value), usd(value * low),
                   usd(value * high), usd(value) * SPOT_FACTOR if price_nodes else 0.0, basis, kind, steps, train_rows)

    @property
    def available(self) -> bool:
        return self.seconds is not None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["advice"] = list(self.advice)
        return out

    def lines(self) -> list[str]:
        """The rows ``str(plan)`` shows."""
        if self.seconds is None:
            return [f"  estimate     {self.basis}"]
        money = (f"; ${self.cost:.2f} on demand (${self.cost_low:.2f}-${self.cost_high:.2f}), spot about "
                 f"${self.spot_cost:.2f}" if self.cost else "; no charge")
        up_to = "up to " if self.ceiling else ""
        return [f"  estimate     {up_to}{human_seconds(self.seconds)} ({human_seconds(self.seconds_low)}-"
                f"{human_seconds(self.seconds_high)}), {up_to}{self.steps} steps{money}",
                f"               {self.kind}: {self.basis}"] + ([f"  ceiling      {self.ceiling}"] if self.ceiling else []
                                                             ) + [f"  advice       {a}" for a in self.advice]

    def __str__(self) -> str:
        return "\n".join(line.strip() for line in self.lines())


# ---- SageMaker ----------------------------------------------------------------------------------------------
def _precision(requested: str, bf16: bool) -> str:
    if requested in ("auto", "bf16"):
        return "bf16" if bf16 else "fp16"
    return requested


def sagemaker_estimate(job: Job, shape: DataShape, hyperparameters: dict[str, str], instance: str, nodes: int,
                       price_per_hour: float) -> Estimate:
    """The calibrated model's estimate for ``nodes`` x ``instance`` (rows known)."""
    data = calibration_data()
    inst = lookup(instance)
    world = inst.gpus * nodes
    work, hp = workload(shape, hyperparameters, world)
    precision = _precision(hp["precision"], inst.bf16)
    model = model_size(job.model_id, job.model_config)
    cal = calibration()
    value = seconds(work, Hardware(inst.gpu, precision, inst.gpus, nodes), model, cal)
    low, high = data["range"]["low"], data["range"]["high"]
    what = (f"{model.layers} layers x {model.hidden} hidden"
            + ("" if model.source == "known" else f" ({'from the name' if model.source == 'name' else 'assumed'})"))
    tokens = (f"{work.tokens_per_row:.0f} padded tokens a row"
              + ("" if shape.lengths else " (lengths unknown before fit: max_length, an upper bound)"))
    if (inst.gpu, precision) == ("V100", "fp32"):
        kind, gpu_part = "calibrated", "V100 fp32 as the AWS benchmark ran"
    else:
        kind = "extrapolated"
        gpu_part = (f"{inst.gpu} {precision} at {relative_speed(inst.gpu, precision, cal.memory_share):.2f}x the "
                    "benchmark's V100 fp32 speed (published peaks and bandwidth)")
        low, high = low / data["range"]["extrapolated"], high * data["range"]["extrapolated"]
    basis = (f"the 25 V100 runs of the AWS SageMaker Hugging Face benchmark ({data['leave_one_out']['median_abs_time_error']:.0%} median leave-one-out "
             f"error); {gpu_part}; {what}; {tokens}; {shape.train_rows} rows ({shape.source})")
    steps = optimizer_steps(work, world)
    return Estimate.from_seconds(value, low, high, price_nodes=price_per_hour * nodes, basis=basis, kind=kind,
                                 steps=steps, train_rows=shape.train_rows or 0)


def timed_setups(job: Job, shape: DataShape, hyperparameters: Mapping[str, str], *,
                 instances: Sequence[str] | None = None, nodes: Sequence[int] = NODES,
                 spot: Sequence[bool] = (False, True), prices: Mapping[str, float] | None = None) -> tuple[Candidate, ...]:
    """Every setup of the search (:mod:`sagefinetune.cost.search`), timed by the calibrated estimate (rows known)."""
    def time_of(instance: str, n: int) -> float:
        value = sagemaker_estimate(job, shape, dict(hyperparameters), instance, n, 0.0).seconds
        assert value is not None
        return value

    return setups(time_of, instances=instances, nodes=nodes, spot=spot, prices=prices)


# ---- local ------------------------------------------------------------------------------------------------
def local_estimate(job: Job, shape: DataShape, hyperparameters: dict[str, str], processes: int,
                   speed: LocalSpeed | None = None) -> Estimate:
    """This machine's speed applied to the plan's work: the speed given, else the one a probe cached for these
    settings, else the built-in rough speed of this CPU (:mod:`sagefinetune.cost.cpu_speed`)."""
    from sagefinetune.cost.local_speed import cached_speed

    work, hp = workload(shape, hyperparameters, processes)
    steps = optimizer_steps(work, processes)
    assert shape.train_rows is not None
    epochs = epochs_run(hp, shape.train_rows, processes)
    saves = steps // hp["save_steps"] if hp["save_steps"] else epochs
    speed = speed or cached_speed(job, processes)
    rows = f"{shape.train_rows} rows ({shape.source})"
    if speed is None:
        from sagefinetune.cost.cpu_speed import ROUGH_RANGE, rough_speed, this_cpu

        speed = rough_speed(model_size(job.model_id, job.model_config), hp, work.tokens_per_row,
                            work.eval_tokens_per_row, processes)
        value = speed.seconds(steps=steps, saves=saves, eval_rows=work.eval_rows)
        basis = (f"built in for this CPU ({this_cpu().describe()}; {speed.step_s:.2f} s a step), not measured here; "
                 f"sft.measure_speed(job) times a few steps here (about a minute, once) and plans use it; {rows}")
        return Estimate.from_seconds(value, *ROUGH_RANGE, price_nodes=0.0, basis=basis, kind="rough", steps=steps,
                                     train_rows=shape.train_rows)
    value = speed.seconds(steps=steps, saves=saves, eval_rows=work.eval_rows)
    basis = (f"this machine's speed for these settings, measured {speed.measured_at} by a probe of "
             f"{speed.probe_steps} steps ({speed.step_s:.3f} s a step, {speed.startup_s:.1f} s to start); {rows}")
    return Estimate.from_seconds(value, *LOCAL_RANGE, price_nodes=0.0, basis=basis, kind="measured here", steps=steps,
                                 train_rows=shape.train_rows)


# ---- the plan's estimate --------------------------------------------------------------------------------------
def estimate_plan(job: Job, plan: TrainingPlan, *, train_rows: int | None = None, local_speed: LocalSpeed | None = None,
                  shape: DataShape | None = None, scale_lr: bool = False) -> Estimate:
    """The estimate of ``plan``, with advice. Pure."""
    shape = shape or data_shape(job, train_rows)
    if shape.train_rows is None:
        est = Estimate.unavailable(shape.reason)
    elif plan.backend == "local":
        est = local_estimate(job, shape, dict(plan.hyperparameters), plan.world_size, local_speed)
    else:
        assert plan.sagemaker is not None
        est = sagemaker_estimate(job, shape, dict(plan.hyperparameters), plan.instance, plan.nodes,
                                 plan.sagemaker.cost.price_per_hour)
    patience = job.hyperparameters_.get("early_stopping")
    ceiling = (f"early_stopping={patience}: the job may stop earlier, after {patience} evaluations without a better "
               "score, and cost less; this is the time and cost of every step" if patience and est.available else "")
    return replace(est, advice=advice(job, plan, est, shape, scale_lr), ceiling=ceiling)


def advice(job: Job, plan: TrainingPlan, est: Estimate, shape: DataShape, scale_lr: bool) -> tuple[str, ...]:
    """Where scaling stops paying (the next step up: twice the nodes), the plan next to the cheapest setup, and the
    learning rate for the global batch."""
    out = []
    if est.seconds is not None and est.cost and plan.sagemaker is not None:
        bigger = sagemaker_estimate(job, shape, dict(plan.hyperparameters), plan.instance, plan.nodes * 2,
                                    plan.sagemaker.cost.price_per_hour)
        assert bigger.seconds is not None and bigger.cost is not None
        speedup, cost_ratio = est.seconds / bigger.seconds, bigger.cost / est.cost
        gpus = plan.processes_per_node
        verdict = (" - scaling stops paying here: the added GPUs give less than half their share"
                   if speedup < 1.5 else "")
        out.append(f"{plan.nodes} -> {plan.nodes * 2} nodes ({plan.nodes * gpus} -> {plan.nodes * 2 * gpus} GPUs): "
                   f"{speedup:.2f}x faster for {cost_ratio:.2f}x the cost{verdict} "
                   f"(the AWS SageMaker Hugging Face benchmark: 16 -> 32 V100 GPUs {calibration_data()['seed']['speedup_16_32']:.2f}x faster for "
                   f"{calibration_data()['seed']['cost_ratio_16_32']:.2f}x the cost)")
    if est.seconds is not None and est.cost and plan.sagemaker is not None:
        out.append(cheapest_advice(job, plan, est, shape))
    if plan.world_size > 1 and not scale_lr:
        from sagefinetune.entrypoint.contract import parse_hyperparameters

        hp = parse_hyperparameters(dict(plan.hyperparameters))
        per_process = hp["batch_size"] * hp["gradient_accumulation_steps"]
        seed = calibration_data()["seed"]
        out.append(
            f"global batch {per_process * plan.world_size} is {plan.world_size}x the batch of {per_process} that "
            f"learning_rate={hp['learning_rate']:g} was set for; in the AWS SageMaker Hugging Face benchmark F1 at 100k rows fell from "
            f"{seed['f1_1gpu_100k']:.3f} (1 GPU) to {seed['f1_32gpu_100k']:.3f} at 32 GPUs with that rate, and was "
            f"{seed['f1_32gpu_100k_scaled_lr']:.3f} at {seed['scaled_lr']:g} (x sqrt 32). "
            "plan/fit(..., scale_lr=True) raises it with the square root of the global batch")
    return tuple(out)


def cheapest_advice(job: Job, plan: TrainingPlan, est: Estimate, shape: DataShape) -> str:
    """The plan next to the cheapest setup of the search over every GPU type and 1-8 nodes, on demand."""
    assert plan.sagemaker is not None and est.seconds is not None and est.cost is not None
    found = timed_setups(job, shape, plan.hyperparameters, spot=(False,),
                         prices={plan.instance: plan.sagemaker.cost.price_per_hour})
    mine = Candidate(plan.instance, plan.nodes, False, plan.world_size, est.seconds, est.cost)
    return versus_cheapest(found, mine)


def scaled_learning_rate(learning_rate: float, world: int) -> float:
    """The rate for a global batch ``world`` times the one it was set for: x sqrt(world)."""
    return learning_rate * math.sqrt(world)
