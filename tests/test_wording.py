"""What users read says things in their words: the benchmark by its name, the docs by their page, one measured time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sagefinetune as sft

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK_URL = "https://github.com/aws-samples/amazon-sagemaker-huggingface-benchmark"
# The project's own word for the AWS benchmark it started from; "seed" alone, "seed=42" or "(seed 0)" stay allowed.
PROJECT_WORDS = re.compile(r"\bseed's\b|\bseed 0\d\d\b|\bthe seed\b", re.IGNORECASE)
REPOSITORY_PATH = re.compile(r"\b(benchmarks|tests|docs|examples)/[\w./-]+")
QUICKSTART_TIME = "3 min 34 s measured on a 2-vCPU Intel Xeon with other work running"
ROLE = "arn:aws:iam::123456789012:role/sagefinetune-test"


def user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst")), ROOT / "docs" / "conf.py",
             ROOT / "docs" / "estimate_tables.py", *sorted((ROOT / "examples").glob("*.py"))]
    package = ROOT / "sagefinetune"
    files += [p for p in sorted(package.rglob("*")) if p.suffix in (".py", ".md", ".json") and p.is_file()]
    return files


def test_no_text_calls_the_aws_benchmark_the_seed():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in user_facing_files()
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if PROJECT_WORDS.search(line)]
    assert found == []


def test_the_benchmark_is_named_and_linked():
    benchmark_page = (ROOT / "docs" / "benchmark-grid.rst").read_text()
    assert BENCHMARK_URL in benchmark_page and BENCHMARK_URL in (ROOT / "README.md").read_text()
    job = sft.Job.from_dataset(sft.Dataset.example("imdb")).hyperparameters(max_length=256, precision="fp32")
    estimate = job.plan(instance="ml.p3.2xlarge").estimate
    assert estimate.basis.startswith("the 25 V100 runs of the AWS SageMaker Hugging Face benchmark (")


@pytest.mark.parametrize("model, hp", [
    ("sentence-transformers/all-MiniLM-L6-v2", {}),  # the rate and warmup chosen for the width
    ("sentence-transformers/all-MiniLM-L6-v2", {"learning_rate": 1e-4}),  # the warmup alone
    ("org/unknown-model", {}),  # width unknown
    ("bert-large-uncased", {}),
])
def test_plan_notes_cite_docs_pages_not_repository_paths(model, hp):
    job = sft.Job.from_dataset(sft.Dataset.example("imdb")).model(model).hyperparameters(**hp)
    for plan in (job.plan(), job.plan(instance="ml.g5.12xlarge", nodes=2, bucket="my-bucket", role=ROLE)):
        text = str(plan)
        assert not REPOSITORY_PATH.search(text), text
    if model.endswith("MiniLM-L6-v2"):
        assert 'see the docs page "Benchmarks"' in text


def test_the_quickstart_time_is_one_measured_figure_everywhere():
    for name in ("README.md", "docs/getting-started.rst", "examples/quickstart.py"):
        text = " ".join((ROOT / name).read_text().split())
        assert QUICKSTART_TIME in text, name
        assert not re.search(r"about (two|2|three|3) minutes", text, re.IGNORECASE), name


def test_the_extras_are_listed_where_they_are_needed():
    assert "- ``tune``:" in (ROOT / "docs" / "getting-started.rst").read_text()
    assert 'pip install -e ".[tune]"' in (ROOT / "docs" / "tune-and-diagnose.rst").read_text()


def test_getting_started_shows_the_plan_a_newcomer_sees_with_a_time_and_no_fix():
    """The plan in the tutorial is the one the quickstart prints (issue 21.3): a time on this machine, no Fix:."""
    import sagefinetune as sft

    text = (ROOT / "docs" / "getting-started.rst").read_text()
    shown = text[text.index("The plan it prints first"):text.index("The time is **rough**")]
    assert "estimate     2m26s" in shown and "rough: built in for this CPU" in shown and "Fix:" not in shown
    job = (sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes").sample(train=2000, test=500, seed=42))
           .hyperparameters(epochs=1, batch_size=32, max_length=128))
    plan = str(job.plan())
    assert "Fix:" not in plan and "  estimate     " in plan and "rough: built in for this CPU" in plan
    for line in plan.splitlines()[:8]:  # the lines that do not depend on this machine are the tutorial's
        assert line in shown


def test_the_data_page_documents_the_split_column_the_column_choice_and_the_report():
    text = (ROOT / "docs" / "data-and-labels.rst").read_text()
    for needed in ('split_column="split"', "split_column=False", "Ludwig's target detection", "The data report",
                   "test rows also in train", "Which columns", "Fix: .columns(label=<one of those>)"):
        assert needed in text, needed
