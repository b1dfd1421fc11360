"""Every bad input stops with a clear error before it costs anything: the error type, the value found, and a fix.

One table per entry point. Each case is ``(id, call, error type, text the message must quote)``; every message must
also say ``Fix``. The SageMaker cases that reach fit() run against the moto server and prove that nothing was
uploaded and no training job was created.
"""

from __future__ import annotations

import math

import aws
import pandas as pd
import pytest
from conftest import MODEL

import sagefinetune as sft
from sagefinetune import Dataset, Job, LabelMap
from sagefinetune.runtime.predict import Predictor

HF_TOKEN = "hf_" + "a1b2c3d4e5" * 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Broken and odd files, written once."""
    d = tmp_path_factory.mktemp("bad-files")
    (d / "good.csv").write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20)))
    (d / "quote.csv").write_text('text,label\n"an unclosed quote,1\nfine,0\n')
    (d / "latin1.csv").write_bytes("text,label\ncaf\xe9 cr\xe8me,1\nok,0\n".encode("latin-1"))
    (d / "header.csv").write_text("text,label\n")
    (d / "numbers.csv").write_text("text,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    (d / "empty_text.csv").write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(9)) + ",1\n")
    (d / "notjson.json").write_text("this is not json\n")
    (d / "notparquet.parquet").write_text("text,label\na,1\n")
    (d / "afolder").mkdir()
    (d / "config_only").mkdir()
    (d / "config_only" / "config.json").write_text("{}")
    (d / "a_file").write_text("x")
    return d


def four_classes(rows: int = 20) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"text number {i}" for i in range(rows)], "label": [i % 4 for i in range(rows)]})


def small() -> Job:
    return Job.from_dataset(Dataset.example("bbc_news").sample(train=60, test=20, seed=1)).hyperparameters(epochs=1)


def check(call, error, value):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert value in message, f"the message does not quote {value!r}: {message}"
    assert "Fix" in message, f"the message gives no fix: {message}"
    return message


# ---- builders: Dataset, LabelMap, Job --------------------------------------------------------------------------
BUILDERS = [
    ("csv missing", lambda f: Dataset.from_csv(f / "nope.csv"), sft.ConfigError, "nope.csv"),
    ("csv folder", lambda f: Dataset.from_csv(f / "afolder"), sft.ConfigError, "afolder"),
    ("csv pattern", lambda f: Dataset.from_csv(str(f / "*.tsv")), sft.ConfigError, "*.tsv"),
    ("csv not a path", lambda f: Dataset.from_csv(123), sft.ConfigError, "123"),
    ("json missing", lambda f: Dataset.from_json(f / "nope.jsonl"), sft.ConfigError, "nope.jsonl"),
    ("disk missing", lambda f: Dataset.from_disk(f / "never-saved"), sft.ConfigError, "never-saved"),
    ("pandas not a frame", lambda f: Dataset.from_pandas({"train": [1, 2]}), sft.ConfigError, "list"),
    ("pandas duplicated column",
     lambda f: Dataset.from_pandas(pd.DataFrame([[1, 2, 3]], columns=["text", "label", "text"])), sft.ConfigError, "'text'"),
    ("example typo", lambda f: Dataset.example("imbd"), sft.ConfigError, "imbd"),
    ("hub empty id", lambda f: Dataset.from_hub(" "), sft.ConfigError, "' '"),
    ("hub empty revision", lambda f: Dataset.from_hub("org/x", revision=""), sft.ConfigError, "''"),
    ("hub copy language typo", lambda f: Dataset.from_hub("amazon_reviews_multi", "eng"), sft.ConfigError, "'eng'"),
    ("s3 not a uri", lambda f: Dataset.from_s3(train="bucket/train/"), sft.ConfigError, "bucket/train/"),
    ("columns not a name", lambda f: Dataset.example("imdb").columns(text=5), sft.ConfigError, "5"),
    ("sample zero", lambda f: Dataset.example("imdb").sample(train=0), sft.ConfigError, "0"),
    ("sample bool", lambda f: Dataset.example("imdb").sample(train=True), sft.ConfigError, "True"),
    ("sample seed", lambda f: Dataset.example("imdb").sample(train=5, seed="x"), sft.ConfigError, "'x'"),
    ("split fraction", lambda f: Dataset.example("imdb").split(test=1.5), sft.ConfigError, "1.5"),
    ("filter not callable", lambda f: Dataset.example("imdb").filter(42), sft.ConfigError, "42"),
    ("labels empty", lambda f: LabelMap({}), sft.ConfigError, "empty"),
    ("labels blank name", lambda f: LabelMap({1: "   ", 2: "b"}), sft.ConfigError, "'   '"),
    ("labels newline", lambda f: LabelMap({1: "a\nb", 2: "c"}), sft.ConfigError, "'a\\nb'"),
    ("labels 1 and '1'", lambda f: LabelMap({1: "neg", "1": "pos"}), sft.ConfigError, "'1'"),
    ("labels not a mapping", lambda f: LabelMap([1, 2]), sft.ConfigError, "[1, 2]"),
    ("labels one class", lambda f: LabelMap({1: "x", 2: "x"}), sft.ConfigError, "['x']"),
    ("label names a string", lambda f: LabelMap.names("ab"), sft.ConfigError, "'ab'"),
    ("label names repeat", lambda f: LabelMap.names(["a", "a"]), sft.ConfigError, "['a']"),
    ("job from a string", lambda f: Job.from_dataset("data.csv"), sft.ConfigError, "str"),
    ("model empty", lambda f: small().model(""), sft.ConfigError, "''"),
    ("model folder missing", lambda f: small().model("/no/such/folder"), sft.ConfigError, "/no/such/folder"),
    ("model folder without config", lambda f: small().model(str(f / "afolder")), sft.ConfigError, "afolder"),
    ("model folder without weights", lambda f: small().model(str(f / "config_only")), sft.ConfigError, "no weights"),
    ("model id with spaces", lambda f: small().model("my model"), sft.ConfigError, "'my model'"),
    ("model num_labels", lambda f: small().model(MODEL, num_labels=3), sft.ConfigError, "num_labels"),
    ("model config not json", lambda f: small().model(MODEL, x=object()), sft.ConfigError, "object"),
    ("epochs inf", lambda f: small().hyperparameters(epochs=math.inf), sft.ConfigError, "inf"),
    ("epochs nan", lambda f: small().hyperparameters(epochs=math.nan), sft.ConfigError, "nan"),
    ("seed negative", lambda f: small().hyperparameters(seed=-1), sft.ConfigError, "-1"),
    ("hyperparameter typo", lambda f: small().hyperparameters(epochz=1), sft.ConfigError, "'epochz'"),
    ("batch size string", lambda f: small().hyperparameters(batch_size="32"), sft.ConfigError, "'32'"),
    ("learning rate zero", lambda f: small().hyperparameters(learning_rate=0), sft.ConfigError, "learning_rate=0"),
    ("max length tiny", lambda f: small().hyperparameters(max_length=4), sft.ConfigError, "max_length=4"),
    ("precision", lambda f: small().hyperparameters(precision="fp8"), sft.ConfigError, "'fp8'"),
    ("map_labels list", lambda f: small().map_labels([0, 1]), sft.ConfigError, "[0, 1]"),
]


@pytest.mark.parametrize("name, call, error, value", BUILDERS, ids=[c[0] for c in BUILDERS])
def test_builders_refuse_bad_input(files, name, call, error, value):
    check(lambda: call(files), error, value)


# ---- reading the rows: .load() and .prepare() ------------------------------------------------------------------
LOADING = [
    ("csv broken quote", lambda f: Dataset.from_csv(f / "quote.csv").load(), sft.DataError, "quote.csv"),
    ("csv not utf-8", lambda f: Dataset.from_csv(f / "latin1.csv").load(), sft.DataError, "latin1.csv"),
    ("csv header only", lambda f: Dataset.from_csv(f / "header.csv").load(), sft.DataError, "header.csv"),
    ("json not json", lambda f: Dataset.from_json(f / "notjson.json").load(), sft.DataError, "notjson.json"),
    ("parquet not parquet", lambda f: Dataset.from_parquet(f / "notparquet.parquet").load(), sft.DataError,
     "notparquet.parquet"),
    ("reader option typo", lambda f: Dataset.from_csv(f / "good.csv", seperator=";").load(), sft.ConfigError,
     "'seperator'"),
    ("mixed label types", lambda f: Dataset.from_pandas(pd.DataFrame({"text": ["a", "b", "c"], "label": [1, "1", 1.0]}))
     .load(), sft.DataError, "label"),
    ("missing column", lambda f: Dataset.from_csv(f / "good.csv").columns(text="body").load(), sft.ColumnError, "'body'"),
    ("one column two roles", lambda f: Dataset.from_csv(f / "good.csv").columns(text="label").load(), sft.ConfigError,
     "'label'"),
    ("filters keep nothing", lambda f: Dataset.from_csv(f / "good.csv").filter(lambda r: False).load(), sft.DataError,
     "filter"),
    ("split too small for the classes", lambda f: Dataset.from_pandas(four_classes()).split(test=2).load(),
     sft.DataError, "4 classes"),
    ("script-only hub dataset", lambda f: Dataset.from_hub("mteb/amazon_reviews_multi", "en").load(),
     sft.DatasetUnavailableError, "amazon_reviews_multi"),
    ("text column of numbers", lambda f: Job.from_dataset(Dataset.from_csv(f / "numbers.csv")).prepare(), sft.DataError,
     "int64"),
    ("empty text row", lambda f: Job.from_dataset(Dataset.from_csv({"train": str(f / "empty_text.csv"),
                                                                     "test": str(f / "good.csv")})).prepare(),
     sft.DataError, "row 9"),
    ("labels outside the map in two splits", lambda f: Job.from_dataset(Dataset.example("bbc_news").sample(
        train=50, test=20, seed=0)).map_labels({0: "business", 1: "entertainment"}).prepare(), sft.LabelError,
     "the test split"),
    ("multi-label rows, single-label map", lambda f: Job.from_dataset(Dataset.from_pandas(
        {"train": pd.DataFrame({"text": ["a", "b"], "label": [["x"], ["y", "x"]]}),
         "test": pd.DataFrame({"text": ["c"], "label": [["y"]]})})).map_labels({"x": "x", "y": "y"}).prepare(),
     sft.LabelError, "multi_label"),
    ("mixed raw label values", lambda f: LabelMap.infer([1, "a", 2]), sft.LabelError, "'a'"),
]


@pytest.mark.parametrize("name, call, error, value", LOADING, ids=[c[0] for c in LOADING])
def test_reading_refuses_bad_data_with_the_file_and_the_fix(files, name, call, error, value):
    check(lambda: call(files), error, value)


# ---- plans: local and SageMaker (pure) -------------------------------------------------------------------------
SECRET_TAG = {"owner": HF_TOKEN}
PLANS = [
    ("nodes zero", {"nodes": 0}, sft.ConfigError, "nodes=0"),
    ("instance empty", {"instance": ""}, sft.ConfigError, "''"),
    ("local epochs option", {"instance": "local", "epochs": 1}, sft.ConfigError, ".hyperparameters(epochs=1)"),
    ("local sagemaker option", {"instance": "local", "spot": True}, sft.ConfigError, "spot"),
    ("job name", {"job_name": "bad name!"}, sft.ConfigError, "'bad name!'"),
    ("instance typo", {"instance": "ml.p3.16xlarg"}, sft.ConfigError, "'ml.p3.16xlarg'"),
    ("instance without GPU", {"instance": "ml.m5.xlarge"}, sft.ImageError, "ml.m5.xlarge"),
    ("sagemaker epochs option", {"epochs": 1}, sft.ConfigError, ".hyperparameters(epochs=1)"),
    ("option typo", {"spto": True}, sft.ConfigError, "'spto'"),
    ("spot as text", {"spot": "false"}, sft.ConfigError, "'false'"),
    ("isolation as text", {"network_isolation": "yes"}, sft.ConfigError, "'yes'"),
    ("encryption as int", {"encrypt_inter_node": 1}, sft.ConfigError, "1"),
    ("max_run nan", {"max_run": math.nan}, sft.ConfigError, "nan"),
    ("max_run words", {"max_run": "forever"}, sft.ConfigError, "'forever'"),
    ("max_run zero", {"max_run": 0}, sft.ConfigError, "max_run=0"),
    ("max_wait without spot", {"max_wait": "1h"}, sft.ConfigError, "'1h'"),
    ("max_wait below max_run", {"spot": True, "max_run": "2h", "max_wait": "1h"}, sft.ConfigError, "max_wait=3600s"),
    ("volume zero", {"volume_size": 0}, sft.ConfigError, "volume_size=0"),
    ("tags as a list", {"tags": ["team=nlp"]}, sft.ConfigError, "['team=nlp']"),
    ("tag value a number", {"tags": {"team": 1}}, sft.ConfigError, "1"),
    ("token in a tag", {"tags": SECRET_TAG}, sft.ConfigError, "'owner'"),
    ("environment as a list", {"environment": ["A=1"]}, sft.ConfigError, "['A=1']"),
    ("token in the environment", {"environment": {"HF_TOKEN": "x"}}, sft.ConfigError, "'HF_TOKEN'"),
    ("role a number", {"role": 123}, sft.ConfigError, "123"),
    ("role a name", {"role": "my-role"}, sft.ConfigError, "'my-role'"),
    ("bucket a uri", {"bucket": "s3://my-bucket/data"}, sft.ConfigError, "s3://my-bucket/data"),
    ("bucket capitals", {"bucket": "My_Bucket"}, sft.ConfigError, "'My_Bucket'"),
    ("subnet id", {"subnets": ["sn-1"], "security_groups": ["sg-1"]}, sft.ConfigError, "'sn-1'"),
    ("subnets without groups", {"subnets": "subnet-1"}, sft.ConfigError, "['subnet-1']"),
    ("negative price", {"price_per_hour": -1}, sft.ConfigError, "-1"),
    ("infinite price", {"price_per_hour": math.inf}, sft.ConfigError, "inf"),
    ("checkpoint path", {"checkpoint_s3": "/tmp/ckpt"}, sft.ConfigError, "'/tmp/ckpt'"),
    ("transformers version", {"transformers_version": "4.0"}, sft.ImageError, "'4.0'"),
    ("region", {"region": "moon-1"}, sft.ConfigError, "'moon-1'"),
    ("prefix", {"prefix": "bad prefix"}, sft.ConfigError, "'bad prefix'"),
    ("isolation with a hub model", {"network_isolation": True}, sft.ConfigError, MODEL),
]


@pytest.mark.parametrize("name, options, error, value", PLANS, ids=[c[0] for c in PLANS])
def test_plans_refuse_bad_options(name, options, error, value):
    options = dict(options)
    instance = options.pop("instance", "ml.g5.xlarge")
    check(lambda: small().plan(instance=instance, **options), error, value)


def test_a_subnet_given_as_text_is_one_subnet_not_characters():
    plan = small().plan(instance="ml.g5.xlarge", subnets="subnet-1", security_groups="sg-1")
    assert plan.sagemaker.subnets == ("subnet-1",) and plan.sagemaker.security_groups == ("sg-1",)


def test_from_s3_values_that_sagemaker_would_change_are_refused_in_the_plan():
    data = Dataset.from_s3(train="s3://my-bucket/train/").columns(text="1e5", label="stars")
    job = Job.from_dataset(data).map_labels({1: "negative", 5: "positive"})
    check(lambda: job.plan(instance="ml.g5.xlarge"), sft.ConfigError, "'100000.0'")
    apostrophe = Job.from_dataset(Dataset.from_s3(train="s3://b-1/t/").columns(text="reviewer's text")).map_labels(
        {"kid's": "children's books", "adult": "adult books"})
    assert apostrophe.plan(instance="ml.g5.xlarge").hyperparameters["text_column"] == "reviewer%27s text"


def test_from_s3_needs_named_classes():
    job = Job.from_dataset(Dataset.from_s3(train="s3://my-bucket/train/"))
    check(lambda: job.plan(instance="ml.g5.xlarge"), sft.ConfigError, "map_labels")
    check(lambda: job.map_labels({1: "a", 2: "b"}).plan(), sft.ConfigError, "from_s3")


# ---- fit on SageMaker: refused before any upload or CreateTrainingJob ------------------------------------------
def fit_sagemaker(moto, job, **options):
    options.setdefault("role", aws.ROLE)
    options.setdefault("bucket", aws.BUCKET)
    return job.fit(instance="ml.g5.xlarge", boto_session=moto.session(), progress=False, **options)


SAGEMAKER_FITS = [
    ("no role", lambda: small(), {"role": None}, sft.CredentialsError, "role"),
    ("missing bucket", lambda: small(), {"bucket": "no-such-bucket"}, sft.AWSError, "'no-such-bucket'"),
    ("labels outside the map", lambda: small().map_labels({0: "business", 1: "entertainment"}), {}, sft.LabelError,
     "2 ("),
    ("config field typo", lambda: small().model(MODEL, num_hiden_layers=1), {}, sft.ConfigError, "num_hiden_layers"),
    ("config changes a weight's shape", lambda: small().model(MODEL, hidden_size=192), {}, sft.ConfigError,
     "hidden_size=192"),
]


@pytest.mark.parametrize("name, make, options, error, value", SAGEMAKER_FITS, ids=[c[0] for c in SAGEMAKER_FITS])
def test_sagemaker_fit_refuses_before_upload_or_job(moto, name, make, options, error, value):
    check(lambda: fit_sagemaker(moto, make(), **options), error, value)
    writes = [c for c in moto.sent if c in ("PutObject", "CreateMultipartUpload", "CreateBucket")]
    assert not writes and "CreateTrainingJob" not in moto.sent, sorted(moto.sent)


def test_attach_to_an_unknown_job_says_what_to_check(moto):
    from sagefinetune.backends.sagemaker.training import SageMakerBackend

    backend = SageMakerBackend(moto.session())
    check(lambda: backend.attach("no-such-job"), sft.AWSError, "'no-such-job'")


def test_a_local_model_folder_travels_as_the_model_channel(moto, tmp_path):
    import shutil

    from sagefinetune.facts.models import local_path

    folder = tmp_path / "my-model"
    shutil.copytree(local_path(MODEL), folder)
    run = fit_sagemaker(moto, small().model(str(folder)))
    request = moto.sent["CreateTrainingJob"][-1]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["model"].startswith(f"s3://{aws.BUCKET}/sagefinetune/models/")
    assert request["HyperParameters"]["model_name_or_path"] == "my-model"  # not this machine's path
    bucket, prefix = channels["model"][len("s3://"):].split("/", 1)
    listing = moto.session().client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    uploaded = {o["Key"][len(prefix):]: o["Size"] for o in listing}
    assert uploaded["model.safetensors"] == (folder / "model.safetensors").stat().st_size  # a multipart upload
    assert {"config.json", "tokenizer.json", "1_Pooling/config.json"} <= set(uploaded)
    moto.sent.clear()
    fit_sagemaker(moto, small().model(str(folder)))  # the same content: uploaded once
    writes = moto.sent.get("PutObject", []) + moto.sent.get("CreateMultipartUpload", [])
    assert not [w for w in writes if "/models/" in w["Key"]]
    assert run.status == "Completed"


# ---- fit on this machine: refused before the subprocess --------------------------------------------------------
LOCAL_FITS = [
    ("run_dir is a file", lambda f: small().fit(run_dir=f / "a_file", progress=False), sft.ConfigError, "a_file"),
    ("model not on this machine", lambda f: small().model("someone/not-downloaded").fit(run_dir=f / "r1", progress=False),
     sft.ConfigError, "'someone/not-downloaded'"),
    ("config field typo", lambda f: small().model(MODEL, num_hiden_layers=1).fit(run_dir=f / "r2", progress=False),
     sft.ConfigError, "num_hiden_layers"),
    ("config changes a weight's shape", lambda f: small().model(MODEL, hidden_size=192).fit(run_dir=f / "r3",
                                                                                            progress=False),
     sft.ConfigError, "hidden_size=192"),
]


@pytest.mark.parametrize("name, call, error, value", LOCAL_FITS, ids=[c[0] for c in LOCAL_FITS])
def test_local_fit_refuses_before_training(files, name, call, error, value):
    check(lambda: call(files), error, value)
    assert not any(files.glob("r*/train.log"))


# ---- predictions ------------------------------------------------------------------------------------------------
def test_a_folder_with_only_a_config_is_not_a_model(files):
    check(lambda: Predictor(files / "config_only"), sft.ConfigError, "weights")


@pytest.mark.slow
@pytest.mark.parametrize("inputs, value", [([("one",)], "('one',)"), ([], "[]"), (123, "123"), ([1, 2], "1")])
def test_predict_refuses_inputs_it_cannot_read(trained_run, inputs, value):
    check(lambda: trained_run.predictor().predict(inputs), sft.ConfigError, value)


@pytest.mark.slow
def test_a_tuple_of_texts_is_two_texts_for_a_single_text_model(trained_run):
    out = trained_run.predictor().predict(("The striker scored twice.", "A new phone was launched."))
    assert [p["label"] for p in out] == ["sports", "tech"]
