"""The cheapest plan that meets a deadline and a budget: ``job.plan(deadline="3h", budget=40, train_rows=...)``. Pure.

The search (:mod:`sagefinetune.cost.search`) tries every GPU instance type with a known price on 1, 2, 4 and 8 nodes,
on demand and on spot (with spot's expected restarts), each timed by the calibrated estimate. The plan of the cheapest
setup that meets both comes back (the fastest within the budget when only a budget is given), with the search in
``plan.search``, every candidate in ``plan.candidates`` and the constraint that binds in ``str(plan)``. When none
meets the ask, a :class:`~sagefinetune.ConfigError` names the fastest and the cheapest setups.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sagefinetune.core.checks import boolean, positive_number
from sagefinetune.cost.estimate import timed_setups
from sagefinetune.cost.search import choose
from sagefinetune.cost.workload import data_shape
from sagefinetune.errors import ConfigError
from sagefinetune.facts.instances import lookup
from sagefinetune.plans.sagemaker import DEFAULT_MAX_RUN, parse_duration
from sagefinetune.plans.training import check_train_rows, make_plan, render_hyperparameters

if TYPE_CHECKING:
    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan

__all__ = ["plan_within", "SEARCH_OPTIONS"]

SEARCH_OPTIONS = ("deadline", "budget")


def plan_within(job: Job, *, instance: str = "local", nodes: int = 1, **options: Any) -> TrainingPlan:
    """The plan of the cheapest setup that meets ``deadline`` and ``budget`` (either may be left out).

    Args:
        instance: left out (``"local"``): every GPU type is searched; a SageMaker type: only that one (its nodes and
            spot are searched).
        nodes: chosen by the search; leave it out.
        **options: ``deadline`` (seconds, ``"90m"``, ``"3h"``), ``budget`` (USD), ``spot`` (True or False: only that;
            left out: both), ``train_rows``, and the options of any SageMaker plan, which the chosen plan keeps.
    """
    deadline = options.pop("deadline", None)
    budget = options.pop("budget", None)
    deadline = parse_duration(deadline, "deadline") if deadline is not None else None
    budget = positive_number("budget", budget, "budget=40 (USD)") if budget is not None else None
    if isinstance(nodes, bool) or nodes != 1:
        raise ConfigError(f"with a deadline or a budget the search chooses the nodes (1, 2, 4 or 8); got nodes={nodes!r}. "
                          f"Fix: drop nodes, or drop deadline and budget to plan nodes={nodes!r} as given.")
    instances = None if instance == "local" else [lookup(instance).name]
    spot = (boolean("spot", options["spot"], "spot=True"),) if "spot" in options else (False, True)
    prices = None
    if options.get("price_per_hour") is not None:
        if instances is None:
            raise ConfigError(f"price_per_hour={options['price_per_hour']!r} prices one instance type, and the search "
                              "tries them all at the dated table's prices. Fix: name the type, "
                              "plan(instance='ml.g5.xlarge', deadline=..., price_per_hour=...), or drop price_per_hour.")
        prices = {instances[0]: positive_number("price_per_hour", options["price_per_hour"], "price_per_hour=1.2")}
    shape = data_shape(job, check_train_rows(options.get("train_rows")))
    if shape.train_rows is None:
        raise ConfigError(f"a search over setups needs the row count to time them: {shape.reason}.")
    found = timed_setups(job, shape, render_hyperparameters(job, remote=True), instances=instances, spot=spot,
                         prices=prices)
    max_run = parse_duration(options.get("max_run", DEFAULT_MAX_RUN), "max_run")  # SageMaker stops a job there
    search = choose(found, deadline=deadline, budget=budget, max_run=max_run)
    chosen = search.chosen
    plan = make_plan(job, instance=chosen.instance, nodes=chosen.nodes, **{**options, "spot": chosen.spot})
    return replace(plan, search=search)
