import subprocess
import sys

import pytest

from sagefinetune import ConfigError, Dataset, Job, LabelMap

ROLE = "arn:aws:iam::123456789012:role/sagefinetune-test"


def base():
    return Job.from_dataset(Dataset.example("imdb"))


def test_every_builder_call_returns_a_new_job():
    a = base()
    b = a.hyperparameters(epochs=1)
    c = b.map_labels({0: "negative", 1: "positive"})
    d = c.model("org/model", num_hidden_layers=2)
    assert a.hyperparameters_["epochs"] == 3 and b.hyperparameters_["epochs"] == 1
    assert b.label_map is None and isinstance(c.label_map, LabelMap)
    assert c.model_id != d.model_id and dict(d.model_config) == {"num_hidden_layers": 2}
    with pytest.raises(TypeError):
        b.hyperparameters_["epochs"] = 5  # type: ignore[index]


def test_from_hub_names_columns():
    job = Job.from_hub("mteb/AmazonReviewsClassification", "en", text="text", label="label")
    assert job.dataset.source.args == ("mteb/AmazonReviewsClassification", "en") and job.dataset.text == "text"
    assert (Job.from_hub("org/reviews").dataset.text, Job.from_hub("org/reviews").dataset.label) == ("text", "label")
    card = Job.from_hub("amazon_reviews_multi", "en", text="review_body", label="stars")  # the API page's spelling
    assert (card.dataset.text, card.dataset.label) == ("review_body", "stars")
    assert Job.from_hub("amazon_reviews_multi", label="language").dataset.label == "language"


@pytest.mark.parametrize("kwargs, message", [
    ({"epochz": 1}, "unknown hyperparameter 'epochz'; did you mean 'epochs'"),
    ({"learning_rate": 5}, "learning_rate=5 must be in \\(0, 1\\)"),
    ({"batch_size": 0}, "batch_size=0 must be >= 1"),
    ({"batch_size": "32"}, "batch_size='32' has the wrong type"),
    ({"precision": "fp8"}, "precision='fp8' must be one of auto, fp32, fp16, bf16"),
    ({"max_length": 4}, "max_length=4 must be in \\[8, 8192\\]"),
    ({"epochs": float("inf")}, "epochs=inf is not a finite number; it must be in \\(0, 10000\\]"),
    ({"learning_rate": float("nan")}, "learning_rate=nan is not a finite number; it must be in \\(0, 1\\)"),
])
def test_bad_hyperparameters_fail_at_the_call(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        base().hyperparameters(**kwargs)


def test_label_fields_come_from_the_label_map_only():
    with pytest.raises(ConfigError, match="map_labels"):
        base().model("org/m", num_labels=3)


def test_plan_is_pure_and_printable():
    job = base().map_labels({0: "negative", 1: "positive"}).hyperparameters(epochs=1, learning_rate=2.4e-5)
    plan = job.plan(job_name="demo")
    assert plan.backend == "local" and plan.world_size == 1
    assert plan.hyperparameters["learning_rate"] == "2.4e-05"
    assert plan.hyperparameters["labels"] == '["negative","positive"]'
    assert plan.to_dict()["hyperparameters"]["epochs"] == "1"
    text = str(plan)
    assert "TrainingPlan demo" in text and "['negative', 'positive']" in text and "this machine" in text
    assert job.plan(job_name="demo").to_dict() == plan.to_dict()


def test_a_local_plan_shows_the_run_folder_fit_will_make():
    """The plan names the job; the folder fit() makes carries the launch time too, and the plan shows how."""
    import re
    from pathlib import Path

    from sagefinetune.plans.training import launch_name

    plan = base().plan()
    line = next(line for line in str(plan).splitlines() if line.lstrip().startswith("run folder"))
    shown = line.split(None, 2)[2]
    assert shown == ("sft-runs/sft-all-minilm-l6-v2-<UTC launch time, YYYYMMDD-HHMMSS> (fit(run_dir=...) picks "
                     "another)")
    made = Path("sft-runs") / launch_name(plan.job_name, now=1796536235.0)  # what a local fit without run_dir makes
    pattern = re.escape(shown.split(" (")[0]).replace(re.escape("<UTC launch time, YYYYMMDD-HHMMSS>"), r"\d{8}-\d{6}")
    assert made.as_posix() == "sft-runs/sft-all-minilm-l6-v2-20261206-055035" and re.fullmatch(pattern, made.as_posix())
    assert "run folder" not in str(base().plan(instance="ml.g5.xlarge", bucket="my-bucket", role=ROLE))


def test_two_local_processes_are_planned():
    plan = base().plan(nodes=2)
    assert plan.processes_per_node == 2 and plan.world_size == 2 and "gloo" in str(plan)


@pytest.mark.parametrize("nodes", [0, -1, 1.5, True])
def test_nodes_must_be_a_positive_int(nodes):
    with pytest.raises(ConfigError, match="nodes must be a whole number >= 1"):
        base().plan(nodes=nodes)


def test_sagemaker_options_are_refused_for_local_runs():
    with pytest.raises(ConfigError, match="apply to SageMaker jobs"):
        base().plan(spot=True)


def test_import_loads_no_heavy_library():
    code = (
        "import sys, sagefinetune as sft\n"
        "job = sft.Job.from_dataset(sft.Dataset.example('imdb')).map_labels({0: 'neg', 1: 'pos'})\n"
        "job.hyperparameters(epochs=1).plan()\n"
        "print(job.plan(instance='ml.p3.16xlarge', nodes=2, spot=True, bucket='my-bucket'))\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'sagemaker', 'boto3', 'evaluate') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_lists_exactly_the_lazy_exports():
    import sagefinetune

    assert sorted(sagefinetune.__all__) == sorted(sagefinetune._EXPORTS)
    for name in sagefinetune.__all__:
        assert getattr(sagefinetune, name).__name__ == name



def test_a_missing_dependency_names_what_to_install(monkeypatch):
    import importlib.util

    from sagefinetune import MissingDependencyError
    from sagefinetune.core.deps import require

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("matplotlib", "torch") else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"to plot.*pip install 'sagefinetune\[plot\]'") as err:
        require("matplotlib", "plot")
    assert isinstance(err.value, ImportError)
    with pytest.raises(MissingDependencyError, match="pip install 'torch'"):
        require("torch", "train")


def test_model_config_overrides_must_be_json():
    with pytest.raises(ConfigError, match="not JSON"):
        base().model("org/m", initializer=object())
