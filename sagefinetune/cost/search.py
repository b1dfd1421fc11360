"""The search over setups: training GPU types x nodes x on demand or spot, each timed by the calibrated estimate. Pure.

One search serves two things: ``job.plan(deadline=..., budget=...)`` (the cheapest setup that meets a deadline and a
budget, or the fastest within a budget) and every SageMaker plan's advice (what the plan costs next to the cheapest
setup). The times come from a function, ``time_of(instance, nodes)``: predicted training seconds on demand, which
:func:`sagefinetune.cost.estimate.timed_setups` gives from the calibrated estimate; this module holds only the search.

Which setups: every GPU instance type in :mod:`sagefinetune.facts.instances` with a known price, on 1, 2, 4 and 8
nodes, on demand and on managed spot.

**Spot** is billed at about ``SPOT_FACTOR`` (35%) of the on-demand price, but an interrupted job starts again on a new
instance and resumes from its newest checkpoint. The search counts that, by two assumptions:

- ``SPOT_INTERRUPTIONS_PER_HOUR`` = 0.1 interruptions per instance-hour (an assumption, not a measurement: AWS
  publishes only monthly interruption bands per instance type and region; a job on N nodes stops when any one of them
  is reclaimed, so N instances are interrupted N times as often);
- ``SPOT_RESTART_S`` = 600 seconds lost per interruption: a new instance, the image and the model again (the
  calibrated start-up is about 6 minutes), and the work redone since the newest checkpoint (about 4 minutes: half the
  time between checkpoints when they are some 8 minutes apart; longer epochs lose more, ``save_steps`` shortens them).

So a spot run that takes T seconds on demand on N nodes is expected to take ``T x (1 + 0.1 x N x 600 / 3600)``, that
is T x (1 + N / 60), billed at the spot price. The wait for spot capacity before the start is not counted
(``max_wait`` bounds it). Deadlines and budgets are met by the point estimate (training seconds as SageMaker reports
them, start-up included); the plan's estimate line shows the range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from sagefinetune.core.units import human_seconds
from sagefinetune.errors import ConfigError
from sagefinetune.facts.instances import INSTANCES, SPOT_FACTOR, lookup

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Candidate", "SetupSearch", "setups", "choose", "versus_cheapest", "training_types", "spot_seconds",
           "NODES", "SPOT_INTERRUPTIONS_PER_HOUR", "SPOT_RESTART_S"]

#: The node counts searched.
NODES = (1, 2, 4, 8)
#: Spot interruptions per instance-hour: an assumption (see the module docstring).
SPOT_INTERRUPTIONS_PER_HOUR = 0.1
#: Seconds lost per spot interruption: the start-up again plus the work since the newest checkpoint.
SPOT_RESTART_S = 600.0
#: A costlier setup is sensible when its extra cost buys at least this share of speed (as in the scaling advice).
SHARE = 0.5

TimeOf = Callable[[str, int], float]  # (instance, nodes) -> predicted training seconds on demand


@dataclass(frozen=True)
class Candidate:
    """One setup and what it is expected to take and cost (spot: with its expected restarts, at the spot price).

    ``meets`` and ``why_not`` say how it fares against the ask (a deadline, a budget); ``chosen`` marks the pick.
    """

    instance: str
    nodes: int
    spot: bool
    gpus: int
    seconds: float
    cost: float
    meets: bool = True
    chosen: bool = False
    why_not: str = ""

    @property
    def setup(self) -> str:
        """``2 x ml.g5.12xlarge`` (``... spot``)."""
        return f"{self.nodes} x {self.instance}" + (" spot" if self.spot else "")

    def describe(self) -> str:
        return f"{self.setup}, {human_seconds(self.seconds)} for ${self.cost:.2f}"


def training_types() -> list[str]:
    """The instance types searched: every GPU type in the dated table with a known price."""
    return [name for name, inst in INSTANCES.items() if inst.gpus and inst.price_per_hour > 0]


def spot_seconds(seconds: float, nodes: int) -> float:
    """Expected seconds of a spot run that takes ``seconds`` on demand: its expected restarts added."""
    return seconds * (1 + SPOT_INTERRUPTIONS_PER_HOUR * nodes * SPOT_RESTART_S / 3600)


def setups(time_of: TimeOf, *, instances: Sequence[str] | None = None, nodes: Sequence[int] = NODES,
           spot: Sequence[bool] = (False, True), prices: Mapping[str, float] | None = None) -> tuple[Candidate, ...]:
    """Every setup, timed by ``time_of`` and priced from the table (``prices`` overrides a type's USD per hour).

    Example:
        >>> found = setups(lambda instance, nodes: 3600 / nodes, instances=["ml.g5.xlarge"], nodes=[1, 2])
        >>> for c in found:
        ...     print(c.setup, round(c.seconds), round(c.cost, 3))
        1 x ml.g5.xlarge 3600 1.408
        1 x ml.g5.xlarge spot 3660 0.501
        2 x ml.g5.xlarge 1800 1.408
        2 x ml.g5.xlarge spot 1860 0.509
    """
    out = []
    for name in (list(instances) if instances is not None else training_types()):
        inst = lookup(name)
        price = (prices or {}).get(name, inst.price_per_hour)
        for n in nodes:
            on_demand = time_of(name, n)
            for on_spot in spot:
                seconds = spot_seconds(on_demand, n) if on_spot else on_demand
                usd = seconds / 3600 * price * n * (SPOT_FACTOR if on_spot else 1.0)
                out.append(Candidate(name, n, on_spot, inst.gpus * n, seconds, usd))
    return tuple(out)


@dataclass(frozen=True)
class SetupSearch:
    """The setups searched against a deadline and a budget: the chosen one first, then the others that meet the ask,
    then those that do not (each with why not), each group in the order of the objective.

    The objective: the lowest cost when a deadline is given (with or without a budget), the shortest time when only a
    budget is. ``binds`` names the constraint that decided the pick (``"deadline"``, ``"budget"``, ``"max_run"``, where
    SageMaker would stop the cheaper setups before the deadline, or ``None``) and ``binding`` says it in words.
    """

    candidates: tuple[Candidate, ...]
    deadline: float | None
    budget: float | None
    binds: str | None
    binding: str

    @property
    def chosen(self) -> Candidate:
        return self.candidates[0]

    @property
    def objective(self) -> str:
        return "fastest" if self.deadline is None else "cheapest"

    def table(self) -> pd.DataFrame:
        """One row per setup: instance, nodes, gpus, spot, seconds, cost, meets, chosen, why_not."""
        import pandas as pd

        return pd.DataFrame([asdict(c) for c in self.candidates],
                            columns=["instance", "nodes", "gpus", "spot", "seconds", "cost", "meets", "chosen", "why_not"])

    def to_dict(self) -> dict[str, Any]:
        return {"deadline": self.deadline, "budget": self.budget, "objective": self.objective, "binds": self.binds,
                "binding": self.binding, "chosen": asdict(self.chosen),
                "candidates": [asdict(c) for c in self.candidates]}

    def lines(self) -> list[str]:
        """The rows ``str(plan)`` shows."""
        types = len({c.instance for c in self.candidates})
        lines = [f"  search       the {self.objective} of {len(self.candidates)} setups ({types} GPU type{'s' * (types > 1)} x "
                 f"{'/'.join(str(n) for n in sorted({c.nodes for c in self.candidates}))} nodes x "
                 f"{' or '.join(sorted({'spot' if c.spot else 'on demand' for c in self.candidates}))}) that meets "
                 f"{ask(self.deadline, self.budget)}: {self.chosen.describe()}",
                 f"               {self.binding}"]
        if self.chosen.spot:
            lines.append(f"               spot counts {SPOT_INTERRUPTIONS_PER_HOUR:g} interruptions an instance-hour, "
                         f"{SPOT_RESTART_S / 60:g} minutes lost each (an assumption; see sagefinetune.cost.search)")
        return lines + ["               plan.candidates: every setup, with why not"]


def ask(deadline: float | None, budget: float | None) -> str:
    """``deadline 3h and budget $40.00``."""
    parts = ([f"deadline {_deadline(deadline)}"] if deadline is not None else []) + (
        [f"budget ${budget:.2f}"] if budget is not None else [])
    return " and ".join(parts)


def choose(candidates: Sequence[Candidate], *, deadline: float | None = None, budget: float | None = None,
           max_run: float | None = None) -> SetupSearch:
    """The cheapest candidate that meets both (the fastest within ``budget`` when there is no deadline).

    ``max_run``: the job's MaxRuntimeInSeconds. SageMaker stops a job at it, so a setup expected to take longer
    does not meet the ask whatever the deadline.

    Raises:
        ConfigError: none meets the ask; the message names the fastest and the cheapest setups and what would do.
    """
    if deadline is None and budget is None:
        raise ConfigError("a search over setups needs a deadline, a budget or both; got neither. "
                          "Fix: plan(deadline='3h'), plan(budget=40) or both.")
    by_time = deadline is None
    judged = [_judge(c, deadline, budget, max_run) for c in candidates]
    meeting = sorted((c for c in judged if c.meets), key=_key(by_time))
    if not meeting:
        raise ConfigError(impossible(judged, deadline, budget, max_run))
    chosen = replace(meeting[0], chosen=True)
    rest = [replace(c, why_not=_why_not_chosen(c, chosen, by_time)) for c in meeting[1:]]
    rows = (chosen, *rest, *sorted((c for c in judged if not c.meets), key=_key(by_time)))
    binds, binding = _binding(judged, chosen, deadline, budget, max_run)
    return SetupSearch(rows, deadline, budget, binds, binding)


def _key(by_time: bool) -> Callable[[Candidate], tuple[float, float, int]]:
    if by_time:
        return lambda c: (c.seconds, c.cost, c.gpus)
    return lambda c: (c.cost, c.seconds, c.gpus)


def _judge(c: Candidate, deadline: float | None, budget: float | None, max_run: float | None) -> Candidate:
    reasons = []
    if deadline is not None and c.seconds > deadline:
        reasons.append(f"takes {human_seconds(c.seconds)}, over the {_deadline(deadline)} deadline")
    elif max_run is not None and c.seconds > max_run:
        reasons.append(f"takes {human_seconds(c.seconds)}, over max_run {_deadline(max_run)} (SageMaker would stop it)")
    if budget is not None and c.cost > budget:
        reasons.append(f"costs ${c.cost:.2f}, over the ${budget:.2f} budget")
    return replace(c, meets=not reasons, why_not="; ".join(reasons), chosen=False)


def _why_not_chosen(c: Candidate, chosen: Candidate, by_time: bool) -> str:
    if by_time:
        later = c.seconds - chosen.seconds
        if later < 0.5:
            return f"meets it, as fast as the chosen, for ${c.cost - chosen.cost:.2f} more"
        return f"meets it, but takes {human_seconds(later)} longer than the chosen"
    dearer = c.cost - chosen.cost
    if dearer < 0.005:
        return f"meets it, as cheap as the chosen, but takes {human_seconds(c.seconds - chosen.seconds)} longer"
    return f"meets it, but costs ${dearer:.2f} more than the chosen"


def _same(a: Candidate, b: Candidate) -> bool:
    return (a.instance, a.nodes, a.spot) == (b.instance, b.nodes, b.spot)


def _binding(judged: Sequence[Candidate], chosen: Candidate, deadline: float | None,
             budget: float | None, max_run: float | None = None) -> tuple[str | None, str]:
    """Which constraint decided the pick, and a sentence that says so with the numbers."""
    left = (f"; ${budget - chosen.cost:.2f} of the ${budget:.2f} budget left" if budget is not None else "")
    if deadline is None:
        assert budget is not None
        fastest = min(judged, key=_key(True))
        if _same(fastest, chosen):
            return None, f"the budget does not bind: the fastest of all {len(judged)} setups is within it{left}"
        faster = sum(c.seconds < chosen.seconds for c in judged)
        return "budget", (f"the budget binds: {faster} faster setup(s) cost more than ${budget:.2f} (the fastest, "
                          f"{fastest.describe()})")
    cheapest = min(judged, key=_key(False))
    spare = f"{human_seconds(deadline - chosen.seconds)} to spare"
    if _same(cheapest, chosen):
        what = "neither binds" if budget is not None else "the deadline does not bind"
        return None, f"{what}: the cheapest of all {len(judged)} setups meets it ({spare}{left})"
    cheaper = sum(c.cost < chosen.cost for c in judged)
    if max_run is not None and max_run < deadline:
        return "max_run", (f"max_run binds: {cheaper} cheaper setup(s) take longer than max_run {_deadline(max_run)}, "
                           f"where SageMaker stops a job (the cheapest, {cheapest.describe()}); {spare}{left}")
    return "deadline", (f"the deadline binds: {cheaper} cheaper setup(s) take longer than {_deadline(deadline)} "
                        f"(the cheapest, {cheapest.describe()}); {spare}{left}")


def impossible(judged: Sequence[Candidate], deadline: float | None, budget: float | None,
               max_run: float | None = None) -> str:
    """Why no setup meets the ask, the fastest and the cheapest, and the deadline, budget or max_run that would do."""
    fastest, cheapest = min(judged, key=_key(True)), min(judged, key=_key(False))
    runnable = [c for c in judged if max_run is None or c.seconds <= max_run]  # what SageMaker would not stop
    fixes = []
    if deadline is not None:
        fits = [c for c in runnable if c.seconds <= deadline]
        if fits:
            best = min(fits, key=_key(False))
            fixes.append(f"budget={math.ceil(best.cost * 100) / 100:g} ({best.setup} meets the deadline for that)")
    if budget is not None:
        fits = [c for c in runnable if c.cost <= budget]
        if fits:
            best = min(fits, key=_key(True))
            fixes.append(f"deadline={_duration_up(best.seconds)!r} ({best.setup} fits the budget in that time)")
    # setups that meet the deadline and the budget, all past max_run (else the ask would be met)
    stopped = [c for c in judged if (deadline is None or c.seconds <= deadline) and (budget is None or c.cost <= budget)]
    if max_run is not None and stopped:
        best = min(stopped, key=_key(deadline is None))
        fixes.append(f"max_run={_duration_up(best.seconds)!r} ({best.setup} meets the rest, and SageMaker stops a job "
                     "at max_run)")
    if not fixes or deadline is None or budget is None:  # one constraint alone: what the fastest (for a deadline) or
        by_time = deadline is not None  # the cheapest (for a budget) setup within max_run needs
        best = min(runnable or judged, key=_key(by_time))
        fix = f"deadline={_duration_up(best.seconds)!r}" if by_time else f"budget={math.ceil(best.cost * 100) / 100:g}"
        if max_run is not None and not _same(best, fastest if by_time else cheapest):
            fix += f" ({best.setup}: the {'fastest' if by_time else 'cheapest'} within max_run {_deadline(max_run)})"
        fixes.append(fix)
    within = f" within max_run {_deadline(max_run)}" if max_run is not None and stopped else ""
    return (f"no setup meets {ask(deadline, budget)}{within}: of the {len(judged)} setups searched, the fastest is "
            f"{fastest.describe()} and the cheapest is {cheapest.describe()}. Fix: {' or '.join(fixes)}, or less work "
            "(fewer rows or epochs, a shorter max_length).")


def _deadline(seconds: float) -> str:
    """A deadline as given: ``30m``, ``3h00m``; ``43m30s`` when it is not whole minutes."""
    return _duration_up(seconds) if seconds % 60 == 0 else human_seconds(seconds)


def _duration_up(seconds: float) -> str:
    """A deadline that ``seconds`` meets, rounded up to the minute, as plan() reads it: ``7m``, ``2h05m``."""
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _less_time(seconds: float, than: float) -> str:
    """``13% less time``; ``no less time`` under half a percent."""
    saved = 1 - seconds / than
    return f"{saved:.0%} less time" if saved >= 0.005 else "no less time"


def versus_cheapest(found: Sequence[Candidate], mine: Candidate) -> str:
    """Advice: ``mine`` next to the cheapest of ``found`` (same billing), and whether it is a sensible setup.

    A setup is sensible when no other is as fast or faster for less, and what it costs over the cheapest buys at least
    half its share of speed (speed-up - 1 >= (cost ratio - 1) / 2), the rule of the scaling advice.
    """
    cheapest = min(found, key=_key(False))
    billing = "on spot" if mine.spot else "on demand"
    if mine.cost <= cheapest.cost:
        fastest = min(found, key=_key(True))
        return (f"{mine.setup} is the cheapest of {len(found)} setups searched ({billing}); the fastest, "
                f"{fastest.setup}, takes {_less_time(fastest.seconds, mine.seconds)} for "
                f"{fastest.cost / mine.cost:.0f}x the cost")
    ratio, speedup = mine.cost / cheapest.cost, cheapest.seconds / mine.seconds
    line = (f"{mine.setup}: {ratio:.1f}x the cost of the cheapest of {len(found)} setups, {cheapest.setup} "
            f"(${mine.cost:.2f} vs ${cheapest.cost:.2f} {billing}), for {_less_time(mine.seconds, cheapest.seconds)} "
            f"({human_seconds(mine.seconds)} vs {human_seconds(cheapest.seconds)})")
    if speedup - 1 < SHARE * (ratio - 1):
        return line + " - not sensible: the extra cost buys less than half its share of speed"
    better = [c for c in found if c.cost < mine.cost and c.seconds <= mine.seconds and not _same(c, mine)]
    if better:
        best = min(better, key=_key(False))
        return line + (f" - not sensible: {best.setup} is as fast or faster ({human_seconds(best.seconds)}) "
                       f"for less (${best.cost:.2f})")
    return line + " - sensible: the extra cost buys at least half its share of speed"
