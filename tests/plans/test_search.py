"""job.plan(deadline=..., budget=...): the cheapest plan that meets both, by the calibrated estimate. Pure: no I/O."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sagefinetune as sft
from sagefinetune import ConfigError

ROWS = 2_000_000
COLUMNS = ["instance", "nodes", "gpus", "spot", "seconds", "cost", "meets", "chosen", "why_not"]


def imdb():
    return (sft.Job.from_dataset(sft.Dataset.example("imdb"))
            .map_labels(sft.LabelMap.names(["negative", "positive"]))
            .hyperparameters(epochs=2, batch_size=32, learning_rate=5e-5, max_length=256))


@pytest.fixture(scope="module")
def everything():
    """Every setup, all of them meeting a loose ask: the numbers the other tests pick from."""
    return imdb().plan(deadline="28d", budget=100_000, train_rows=ROWS).candidates


def test_the_plan_is_the_cheapest_setup_that_meets_both(everything):
    plan = imdb().plan(deadline="3h", budget=40, train_rows=ROWS, bucket="my-bucket")
    table = plan.candidates
    assert list(table.columns) == COLUMNS and len(table) == len(everything) == 16 * 4 * 2
    meeting = everything[(everything.seconds <= 3 * 3600) & (everything.cost <= 40)]
    best = meeting.sort_values(["cost", "seconds"]).iloc[0]
    chosen = plan.search.chosen
    assert (chosen.instance, chosen.nodes, chosen.spot) == (best.instance, best.nodes, best.spot)
    assert (plan.backend, plan.instance, plan.nodes, plan.sagemaker.spot) == ("sagemaker", best.instance, best.nodes, best.spot)
    assert plan.sagemaker.bucket == "my-bucket"  # the other options are kept
    assert table.iloc[0]["chosen"] and table["chosen"].sum() == 1
    assert plan.estimate.train_rows == ROWS and plan.to_dict()["search"]["chosen"]["instance"] == best.instance
    text = str(plan)
    assert "search       the cheapest of 128 setups" in text and "deadline 3h00m and budget $40.00" in text
    assert "plan.candidates: every setup, with why not" in text


def test_the_binding_constraint_is_named_in_the_plan(everything):
    cheapest = everything.sort_values(["cost", "seconds"]).iloc[0]
    deadline = int(cheapest.seconds / 2)  # the cheapest of all misses it: the deadline is what costs money
    plan = imdb().plan(deadline=deadline, budget=40, train_rows=ROWS)
    assert plan.search.binds == "deadline" and plan.search.chosen.seconds <= deadline
    assert "the deadline binds:" in str(plan) and f"the cheapest, {cheapest.nodes} x {cheapest.instance}" in str(plan)
    loose = imdb().plan(deadline="1d", budget=40, train_rows=ROWS)
    assert loose.search.binds is None and "neither binds" in str(loose)
    fastest = everything.sort_values(["seconds", "cost"]).iloc[0]
    tight = imdb().plan(budget=round(fastest.cost / 2, 2), train_rows=ROWS)
    assert tight.search.binds == "budget" and "the budget binds:" in str(tight)


def test_deadline_alone_gives_the_cheapest_that_meets_it(everything):
    plan = imdb().plan(deadline="90m", train_rows=ROWS)
    best = everything[everything.seconds <= 5400].sort_values(["cost", "seconds"]).iloc[0]
    assert (plan.instance, plan.nodes, plan.sagemaker.spot) == (best.instance, best.nodes, best.spot)
    assert plan.search.budget is None and plan.search.objective == "cheapest"


def test_budget_alone_gives_the_fastest_within_it(everything):
    plan = imdb().plan(budget=5, train_rows=ROWS)
    best = everything[everything.cost <= 5].sort_values(["seconds", "cost"]).iloc[0]
    assert (plan.instance, plan.nodes, plan.sagemaker.spot) == (best.instance, best.nodes, best.spot)
    assert plan.search.deadline is None and plan.search.objective == "fastest"
    assert plan.candidates.iloc[1:]["why_not"].ne("").all()


def test_spot_restarts_make_a_tight_deadline_pick_on_demand():
    job = imdb()
    table = job.plan(instance="ml.g5.12xlarge", deadline="28d", train_rows=ROWS).candidates
    on_demand, spot = table[~table.spot].seconds.min(), table[table.spot].seconds.min()
    assert on_demand < spot  # the same setup on spot is expected to take longer: its restarts
    plan = job.plan(instance="ml.g5.12xlarge", deadline=int((on_demand + spot) / 2), train_rows=ROWS)
    assert not plan.sagemaker.spot and plan.nodes == 8 and "spot         off" in str(plan)
    twin = plan.candidates[(plan.candidates.nodes == 8) & plan.candidates.spot].iloc[0]
    assert twin.cost < plan.search.chosen.cost and not twin.meets and "deadline" in twin.why_not
    assert set(plan.candidates.instance) == {"ml.g5.12xlarge"}  # a named type: only its nodes and spot are searched
    assert "the cheapest of 8 setups (1 GPU type x 1/2/4/8 nodes x on demand or spot)" in str(plan)


def test_an_impossible_ask_names_the_fastest_and_the_cheapest(everything):
    fastest = everything.sort_values(["seconds", "cost"]).iloc[0]
    cheapest = everything.sort_values(["cost", "seconds"]).iloc[0]
    with pytest.raises(ConfigError) as caught:
        imdb().plan(deadline="10m", budget=1, train_rows=ROWS)
    message = str(caught.value)
    assert message.startswith("no setup meets deadline 10m and budget $1.00: of the 128 setups searched")
    assert f"the fastest is {fastest.nodes} x {fastest.instance}" in message
    assert f"the cheapest is {cheapest.nodes} x {cheapest.instance}{' spot' if cheapest.spot else ''}" in message
    assert "Fix: " in message and "less work" in message
    assert isinstance(caught.value, ValueError)


def test_the_search_refuses_what_it_cannot_use():
    job = imdb()
    with pytest.raises(ConfigError, match="the search chooses the nodes"):
        job.plan(nodes=2, deadline="3h", train_rows=ROWS)
    with pytest.raises(ConfigError, match="price_per_hour=1.0 prices one instance type"):
        job.plan(deadline="3h", price_per_hour=1.0, train_rows=ROWS)
    priced = job.plan(instance="ml.g5.xlarge", deadline="1d", price_per_hour=0.5, spot=False, train_rows=ROWS)
    assert priced.search.chosen.cost == pytest.approx(priced.estimate.cost) and not priced.candidates.spot.any()
    with pytest.raises(ConfigError, match="deadline='3 hours' is not a duration"):
        job.plan(deadline="3 hours", train_rows=ROWS)
    with pytest.raises(ConfigError, match="budget must be a finite number > 0; got -5"):
        job.plan(budget=-5, train_rows=ROWS)
    with pytest.raises(ConfigError, match="unknown instance type 'ml.g5.xlarg'"):
        job.plan(instance="ml.g5.xlarg", deadline="3h")
    remote = sft.Job.from_dataset(sft.Dataset.from_s3(train="s3://b/train/")).map_labels(sft.LabelMap.names(["a", "b"]))
    with pytest.raises(ConfigError, match="needs the row count.*train_rows=<rows>"):
        remote.plan(deadline="3h")
    with pytest.raises(ConfigError, match="train_rows must be a whole number"):
        remote.plan(deadline="3h", train_rows="many")
    assert remote.plan(deadline="3h", train_rows=100_000).backend == "sagemaker"
    assert job.plan(deadline=None, budget=None).backend == "local"  # neither given: an ordinary plan


def test_a_plans_advice_compares_it_with_the_cheapest_setup():
    """Issue 21: the example's 2 x ml.g5.12xlarge next to the cheapest setup, by the same search."""
    advice = imdb().plan(instance="ml.g5.12xlarge", nodes=2).estimate.advice
    line = next(a for a in advice if a.startswith("2 x ml.g5.12xlarge: "))
    assert "the cost of the cheapest of 64 setups, 1 x ml.g4dn.xlarge ($1.46 vs $0.09 on demand)" in line
    assert "13% less time (6m11s vs 7m04s)" in line and "not sensible" in line
    cheapest = imdb().plan(instance="ml.g4dn.xlarge").estimate.advice
    assert any(a.startswith("1 x ml.g4dn.xlarge is the cheapest of 64 setups searched (on demand)") for a in cheapest)
    assert imdb().plan().estimate.advice == ()  # local: nothing to compare


def test_a_search_does_no_io():
    """The second search reads and opens nothing (the first imports its modules and reads the shipped tables)."""
    code = (
        "import sys, time, sagefinetune as sft\n"
        "job = sft.Job.from_dataset(sft.Dataset.example('imdb')).hyperparameters(epochs=2, max_length=256)\n"
        "job.plan(deadline='3h', budget=40, train_rows=2_000_000)\n"
        "seen = []\n"
        "watched = ('open', 'socket.', 'subprocess.', 'os.system', 'urllib.', 'http.')\n"
        "sys.addaudithook(lambda event, args: seen.append(event) if event.startswith(watched) else None)\n"
        "plan = job.plan(deadline='2h', budget=30, train_rows=1_000_000)\n"
        "assert plan.search is not None and not seen, seen\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'sagemaker', 'boto3') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_search_keeps_to_max_run_where_sagemaker_stops_a_job():
    big = 60_000_000  # the cheapest setups take about two days
    plan = imdb().plan(deadline="5d", train_rows=big)
    table = plan.candidates
    assert plan.search.chosen.seconds <= 24 * 3600 == plan.sagemaker.max_run  # the default max_run: 24 h
    assert plan.search.binds == "max_run" and "max_run binds:" in str(plan)
    stopped = table[table.seconds > 24 * 3600]
    assert len(stopped) and not stopped.meets.any()
    assert stopped.why_not.str.endswith("over max_run 24h00m (SageMaker would stop it)").all()
    longer = imdb().plan(deadline="5d", train_rows=big, max_run="3d")
    assert longer.search.chosen.cost < plan.search.chosen.cost and longer.sagemaker.max_run == 3 * 24 * 3600
    assert 24 * 3600 < longer.search.chosen.seconds <= 3 * 24 * 3600
    cheapest = table.sort_values("cost").iloc[0]  # past max_run: a budget only it fits needs a longer max_run
    assert cheapest.seconds > 24 * 3600
    with pytest.raises(ConfigError, match=r"within max_run 24h00m.*Fix: max_run='\d+h\d\dm'"):
        imdb().plan(budget=round(cheapest.cost + 0.01, 2), train_rows=big)
