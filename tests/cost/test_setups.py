"""The search over setups on made-up times, so every pick can be checked by hand: cheapest that meets both, the
constraint that binds, deadline or budget alone, spot's restarts, impossible asks, and the advice's verdicts."""

from __future__ import annotations

import re

import pytest

from sagefinetune import ConfigError
from sagefinetune.cost import search
from sagefinetune.facts.instances import SPOT_FACTOR
from sagefinetune.plans.sagemaker import parse_duration

# hours of work on one instance; a start-up of 300 s; nodes divide the work (the cost model's scaling, simplified)
WORK = {"ml.g4dn.xlarge": 36_000, "ml.g5.xlarge": 18_000, "ml.p4d.24xlarge": 1_800}


def time_of(instance, nodes):
    return 300 + WORK[instance] / nodes


def found(instances=tuple(WORK), **kw):
    return search.setups(time_of, instances=list(instances), **kw)


def brute(cands, deadline=None, budget=None):
    ok = [c for c in cands if (deadline is None or c.seconds <= deadline) and (budget is None or c.cost <= budget)]
    return min(ok, key=(lambda c: (c.seconds, c.cost)) if deadline is None else (lambda c: (c.cost, c.seconds)))


def test_every_setup_is_timed_and_priced_with_spots_restarts():
    cands = found()
    assert len(cands) == 3 * 4 * 2 and {c.nodes for c in cands} == {1, 2, 4, 8}
    one = next(c for c in cands if c.setup == "4 x ml.g5.xlarge")
    spot = next(c for c in cands if c.setup == "4 x ml.g5.xlarge spot")
    assert one.seconds == 300 + 18_000 / 4 and one.cost == pytest.approx(one.seconds / 3600 * 1.408 * 4)
    # 0.1 interruptions an instance-hour x 4 instances x 600 s each: 1/15 longer, billed at the spot price
    assert spot.seconds == pytest.approx(one.seconds * (1 + 4 / 60))
    assert spot.cost == pytest.approx(spot.seconds / 3600 * 1.408 * 4 * SPOT_FACTOR)
    assert search.spot_seconds(3600, 1) == pytest.approx(3660)
    priced = search.setups(time_of, instances=["ml.g5.xlarge"], nodes=[1], spot=[False], prices={"ml.g5.xlarge": 2.0})
    assert [c.cost for c in priced] == [pytest.approx((300 + 18_000) / 3600 * 2.0)]


def test_the_types_searched_are_the_priced_gpu_types():
    types = search.training_types()
    assert "ml.g5.xlarge" in types and "ml.p5.48xlarge" in types and "ml.m5.xlarge" not in types


def test_the_cheapest_that_meets_both_is_chosen_and_the_deadline_binds():
    cands = found()
    result = search.choose(cands, deadline=3 * 3600, budget=40)
    chosen = result.chosen
    assert chosen.setup == "2 x ml.g5.xlarge spot" and chosen.chosen and chosen.meets
    assert chosen.setup == brute(cands, 3 * 3600, 40).setup
    assert result.binds == "deadline" and result.objective == "cheapest"
    assert result.binding.startswith("the deadline binds:") and "1 x ml.g5.xlarge spot" in result.binding
    assert [c.chosen for c in result.candidates].count(True) == 1 and len(result.candidates) == len(cands)
    text = "\n".join(result.lines())
    assert "the cheapest of 24 setups" in text and "deadline 3h00m and budget $40.00" in text
    assert "spot counts 0.1 interruptions an instance-hour, 10 minutes lost each" in text


def test_when_the_cheapest_of_all_meets_both_neither_binds():
    result = search.choose(found(), deadline=24 * 3600, budget=40)
    assert result.chosen.setup == "1 x ml.g5.xlarge spot" and result.binds is None
    assert result.binding.startswith("neither binds: the cheapest of all 24 setups meets it")


def test_deadline_alone_picks_the_cheapest_that_meets_it():
    cands = found()
    result = search.choose(cands, deadline=3600)
    assert result.chosen.setup == brute(cands, deadline=3600).setup == "8 x ml.g5.xlarge spot"
    assert result.budget is None and result.binds == "deadline"


def test_budget_alone_picks_the_fastest_within_it_and_says_the_budget_binds():
    cands = found()
    result = search.choose(cands, budget=10)
    assert result.chosen.setup == brute(cands, budget=10).setup == "2 x ml.p4d.24xlarge spot"
    assert result.objective == "fastest" and result.binds == "budget"
    assert "the fastest, 8 x ml.p4d.24xlarge" in result.binding
    rich = search.choose(cands, budget=1000)
    assert rich.chosen.setup == "8 x ml.p4d.24xlarge" and rich.binds is None
    assert rich.binding.startswith("the budget does not bind")


def test_spot_restarts_make_a_tight_deadline_pick_on_demand():
    cands = found(instances=["ml.g5.xlarge"])
    on_demand = next(c for c in cands if c.setup == "8 x ml.g5.xlarge")
    twin = next(c for c in cands if c.setup == "8 x ml.g5.xlarge spot")
    assert twin.cost < on_demand.cost and twin.seconds > on_demand.seconds
    result = search.choose(cands, deadline=on_demand.seconds + 60)  # spot would be cheaper, but is expected late
    assert result.chosen.setup == "8 x ml.g5.xlarge" and not result.chosen.spot
    late = next(c for c in result.candidates if c.setup == twin.setup)
    assert not late.meets and "over the 43m30s deadline" in late.why_not
    relaxed = search.choose(cands, deadline=twin.seconds + 60)
    assert relaxed.chosen.spot


def test_the_candidates_table_has_one_row_per_setup_and_says_why_not():
    result = search.choose(found(), deadline=3 * 3600, budget=3)
    table = result.table()
    assert list(table.columns) == ["instance", "nodes", "gpus", "spot", "seconds", "cost", "meets", "chosen", "why_not"]
    assert len(table) == 24 and table["chosen"].sum() == 1 and table.iloc[0]["chosen"]
    assert table.iloc[0]["why_not"] == "" and table["meets"].iloc[: table["meets"].sum()].all()
    missed = table[~table["meets"]]
    assert missed["why_not"].str.contains("over the 3h00m deadline|over the \\$3.00 budget").all()
    assert any("; " in w for w in missed["why_not"])  # both missed: both said
    others = table[table["meets"] & ~table["chosen"]]
    assert others["why_not"].str.contains("more than the chosen|as cheap as the chosen").all()
    assert result.to_dict()["chosen"]["instance"] == table.iloc[0]["instance"]


def test_an_impossible_ask_names_the_fastest_and_the_cheapest_and_what_would_do():
    cands = found()
    with pytest.raises(ConfigError) as caught:
        search.choose(cands, deadline=300)
    message = str(caught.value)
    assert "no setup meets deadline 5m" in message
    assert "the fastest is 8 x ml.p4d.24xlarge, 8m45s" in message and "the cheapest is 1 x ml.g5.xlarge spot" in message
    assert "deadline='9m'" in message
    with pytest.raises(ConfigError) as caught:
        search.choose(cands, deadline=3600, budget=3)
    message = str(caught.value)
    budget = float(re.search(r"budget=([\d.]+) \(8 x ml.g5.xlarge spot meets the deadline", message)[1])
    deadline = re.search(r"deadline='(\w+)' \(4 x ml.g5.xlarge spot fits the budget", message)[1]
    assert search.choose(cands, deadline=3600, budget=budget).chosen.setup == "8 x ml.g5.xlarge spot"
    assert search.choose(cands, deadline=parse_duration(deadline, "deadline"), budget=3).chosen.setup == (
        "4 x ml.g5.xlarge spot")
    with pytest.raises(ConfigError, match="budget=2.55"):
        search.choose(cands, budget=1)
    with pytest.raises(ConfigError, match="needs a deadline, a budget or both"):
        search.choose(cands)


# ---- the advice: a plan next to the cheapest setup -------------------------------------------------------------
def mine(setup, seconds, cost):
    nodes, instance = setup.split(" x ")
    return search.Candidate(instance, int(nodes), False, int(nodes), seconds, cost)


def test_advice_compares_with_the_cheapest_and_says_when_the_extra_cost_does_not_pay():
    on_demand = found(spot=[False])
    cheapest = min(on_demand, key=lambda c: c.cost)
    assert cheapest.setup == "1 x ml.g5.xlarge"
    line = search.versus_cheapest(on_demand, mine("2 x ml.p4d.24xlarge", 1200, 25.13))
    assert line.startswith("2 x ml.p4d.24xlarge: 3.5x the cost of the cheapest of 12 setups, 1 x ml.g5.xlarge "
                           "($25.13 vs $7.16 on demand), for 93% less time (20m00s vs 5h05m)")
    assert line.endswith("- sensible: the extra cost buys at least half its share of speed")
    slow = search.versus_cheapest(on_demand, mine("8 x ml.g4dn.xlarge", 4800, 7.85))
    assert slow.endswith("- not sensible: 4 x ml.g5.xlarge is as fast or faster (1h20m) for less ($7.51)")
    pricey = search.versus_cheapest(on_demand, mine("1 x ml.p4d.24xlarge", 17_000, 80.0))
    assert pricey.endswith("- not sensible: the extra cost buys less than half its share of speed")
    first = search.versus_cheapest(on_demand, cheapest)
    assert first.startswith("1 x ml.g5.xlarge is the cheapest of 12 setups searched (on demand); the fastest, "
                            "8 x ml.p4d.24xlarge, takes 97% less time")


def test_a_setup_past_max_run_does_not_meet_the_ask_and_max_run_can_bind():
    cands = found()
    result = search.choose(cands, deadline=24 * 3600, budget=40, max_run=4 * 3600)  # SageMaker stops a job at max_run
    assert result.chosen.setup == brute(cands, 4 * 3600, 40).setup != "1 x ml.g5.xlarge spot"
    assert result.binds == "max_run" and result.binding.startswith("max_run binds:")
    stopped = next(c for c in result.candidates if c.setup == "1 x ml.g5.xlarge spot")
    assert not stopped.meets and stopped.why_not.endswith("over max_run 4h00m (SageMaker would stop it)")
    loose = search.choose(cands, deadline=24 * 3600, budget=40, max_run=24 * 3600)
    assert loose.chosen.setup == "1 x ml.g5.xlarge spot" and loose.binds is None
    with pytest.raises(ConfigError) as caught:
        search.choose(cands, budget=3, max_run=3600)
    message = str(caught.value)
    assert "no setup meets budget $3.00 within max_run 1h00m" in message
    max_run = re.search(r"max_run='(\w+)' \((.+?) meets the rest", message)
    assert search.choose(cands, budget=3, max_run=parse_duration(max_run[1], "max_run")).chosen.setup == max_run[2]
