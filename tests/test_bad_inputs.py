"""Every bad input stops with a clear error before it costs anything: the error type, the value found, and a fix.

One table per entry point. Each case is ``(id, call, error type, text the message must quote)``; every message must
also say ``Fix``. The SageMaker cases that reach fit() run against the moto server and prove that nothing was
uploaded and no training job was created. What is allowed but must not pass in silence is a warning that quotes
the value and gives a fix (WARNINGS).
"""

from __future__ import annotations

import math

import aws
import pandas as pd
import pytest
from conftest import MODEL

import sagefinetune as sft
from sagefinetune import Dataset, Job, LabelMap
from sagefinetune.facts.models import preflight
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


def lonely_classes() -> pd.DataFrame:  # 20 rows in 4 classes, two of them of one row: never on both sides of a split
    return pd.DataFrame({"text": [f"text number {i}" for i in range(20)], "label": [0] * 12 + [1] * 6 + [2, 3]})


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
    ("csv not a path", lambda f: Dataset.from_csv(123), sft.ConfigError, "got 123"),
    ("json missing", lambda f: Dataset.from_json(f / "nope.jsonl"), sft.ConfigError, "nope.jsonl"),
    ("disk missing", lambda f: Dataset.from_disk(f / "never-saved"), sft.ConfigError, "never-saved"),
    ("pandas not a frame", lambda f: Dataset.from_pandas({"train": [1, 2]}), sft.ConfigError, "split 'train' is a list"),
    ("pandas duplicated column",
     lambda f: Dataset.from_pandas(pd.DataFrame([[1, 2, 3]], columns=["text", "label", "text"])), sft.ConfigError, "'text'"),
    ("example typo", lambda f: Dataset.example("imbd"), sft.ConfigError, "imbd"),
    ("hub empty id", lambda f: Dataset.from_hub(" "), sft.ConfigError, "got ' '"),
    ("hub empty revision", lambda f: Dataset.from_hub("org/x", revision=""), sft.ConfigError, "from_hub(revision=...) needs a non-empty string; got ''"),
    ("hub copy language typo", lambda f: Dataset.from_hub("amazon_reviews_multi", "eng"), sft.ConfigError, "'eng'"),
    ("s3 not a uri", lambda f: Dataset.from_s3(train="bucket/train/"), sft.ConfigError, "bucket/train/"),
    ("columns not a name", lambda f: Dataset.example("imdb").columns(text=5), sft.ConfigError,
     "columns(text=...) needs a column name; got 5"),
    ("sample zero", lambda f: Dataset.example("imdb").sample(train=0), sft.ConfigError,
     "sample(train=...) needs a positive row count; got 0"),
    ("sample bool", lambda f: Dataset.example("imdb").sample(train=True), sft.ConfigError, "got True"),
    ("sample seed", lambda f: Dataset.example("imdb").sample(train=5, seed="x"), sft.ConfigError, "got 'x'"),
    ("split fraction", lambda f: Dataset.example("imdb").split(test=1.5), sft.ConfigError, "got 1.5"),
    ("filter not callable", lambda f: Dataset.example("imdb").filter(42), sft.ConfigError, "got 42"),
    ("labels empty", lambda f: LabelMap({}), sft.ConfigError, "LabelMap is empty"),
    ("labels blank name", lambda f: LabelMap({1: "   ", 2: "b"}), sft.ConfigError, "'   '"),
    ("labels newline", lambda f: LabelMap({1: "a\nb", 2: "c"}), sft.ConfigError, "'a\\nb'"),
    ("labels 1 and '1'", lambda f: LabelMap({1: "neg", "1": "pos"}), sft.ConfigError,
     "1 -> 'neg' and '1' -> 'pos' read as the same raw value '1'"),
    ("labels not a mapping", lambda f: LabelMap([1, 2]), sft.ConfigError, "[1, 2]"),
    ("labels one class", lambda f: LabelMap({1: "x", 2: "x"}), sft.ConfigError, "['x']"),
    ("label names a string", lambda f: LabelMap.names("ab"), sft.ConfigError, "'ab'"),
    ("label names repeat", lambda f: LabelMap.names(["a", "a"]), sft.ConfigError, "['a']"),
    ("job from a string", lambda f: Job.from_dataset("data.csv"), sft.ConfigError,
     "needs a sagefinetune.Dataset; got str"),
    ("model empty", lambda f: small().model(""), sft.ConfigError, "needs a Hub id or a folder; got ''"),
    ("model folder missing", lambda f: small().model("/no/such/folder"), sft.ConfigError, "/no/such/folder"),
    ("model folder without config", lambda f: small().model(str(f / "afolder")), sft.ConfigError, "afolder"),
    ("model folder without weights", lambda f: small().model(str(f / "config_only")), sft.ConfigError, "no weights"),
    ("model id with spaces", lambda f: small().model("my model"), sft.ConfigError, "'my model'"),
    ("model num_labels", lambda f: small().model(MODEL, num_labels=3), sft.ConfigError, "num_labels"),
    ("model config not json", lambda f: small().model(MODEL, x=object()), sft.ConfigError,
     "{'x': <object object at"),
    ("epochs inf", lambda f: small().hyperparameters(epochs=math.inf), sft.ConfigError, "epochs=inf"),
    ("epochs nan", lambda f: small().hyperparameters(epochs=math.nan), sft.ConfigError, "epochs=nan"),
    ("seed negative", lambda f: small().hyperparameters(seed=-1), sft.ConfigError, "seed=-1"),
    ("hyperparameter typo", lambda f: small().hyperparameters(epochz=1), sft.ConfigError, "'epochz'"),
    ("batch size string", lambda f: small().hyperparameters(batch_size="32"), sft.ConfigError, "batch_size='32'"),
    ("learning rate zero", lambda f: small().hyperparameters(learning_rate=0), sft.ConfigError, "learning_rate=0"),
    ("max length tiny", lambda f: small().hyperparameters(max_length=4), sft.ConfigError, "max_length=4"),
    ("precision", lambda f: small().hyperparameters(precision="fp8"), sft.ConfigError, "'fp8'"),
    ("map_labels list", lambda f: small().map_labels([0, 1]), sft.ConfigError, "[0, 1]"),
    # issue 17: values that were taken and silently ignored, or failed later with a raw error
    ("sample seed negative", lambda f: Dataset.example("imdb").sample(train=5, seed=-1), sft.ConfigError, "got -1"),
    ("split seed negative", lambda f: Dataset.example("imdb").split(test=0.2, seed=-1), sft.ConfigError, "got -1"),
    ("split name Train (pandas)", lambda f: Dataset.from_pandas({"Train": four_classes()}), sft.ConfigError,
     "'Train'; did you mean 'train'?"),
    ("split name Train (csv)", lambda f: Dataset.from_csv({"Train": f / "good.csv"}), sft.ConfigError,
     "'Train'; did you mean 'train'?"),
    ("split name dev (json)", lambda f: Dataset.from_json({"train": f / "notjson.json", "dev": f / "notjson.json"}),
     sft.ConfigError, "'dev'; did you mean 'validation'?"),
    ("split name Train (hub)", lambda f: Dataset.from_hub("stanfordnlp/imdb", splits={"Train": "train"}),
     sft.ConfigError, "'Train'; did you mean 'train'?"),
    ("hub splits a list", lambda f: Dataset.from_hub("stanfordnlp/imdb", splits=["train", "test"]), sft.ConfigError,
     "splits={'train': 'train', 'test': 'test'}"),
    ("csv folder in a mapping", lambda f: Dataset.from_csv({"train": str(f / "afolder")}), sft.ConfigError,
     "from_csv({'train': '"),
    ("example None", lambda f: Dataset.example(None), sft.ConfigError, "got None"),
    ("pandas empty frame", lambda f: Dataset.from_pandas(pd.DataFrame({"text": [], "label": []})), sft.ConfigError,
     "'train' is empty (0 rows"),
    ("pandas empty test frame", lambda f: Dataset.from_pandas({"train": four_classes(), "test": four_classes()[:0]}),
     sft.ConfigError, "'test' is empty (0 rows"),
    ("model reinitialize alone", lambda f: small().model(MODEL, reinitialize=True), sft.ConfigError,
     "reinitialize=True"),
    ("model reinitialize not a bool", lambda f: small().model(MODEL, hidden_size=192, reinitialize="yes"),
     sft.ConfigError, "'yes'"),
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
    # issue 17
    ("sample of a split that is not there", lambda f: Dataset.from_pandas(four_classes(40)).sample(validation=5).load(),
     sft.ConfigError, "sample(validation=5)"),
    ("sample of a split that is not there, in the plan", lambda f: Job.from_dataset(
        Dataset.from_pandas(four_classes(40)).sample(validation=5)).plan(), sft.ConfigError, ".split(validation=0.1)"),
    ("stratified split, a class of one row", lambda f: Dataset.from_pandas(lonely_classes()).split(test=0.25).load(),
     sft.DataError, "classes 2, 3 have one row"),
    ("label map keyed by text, labels are numbers", lambda f: Job.from_dataset(Dataset.from_pandas(four_classes(40)))
     .map_labels({"0": "a", "1": "b", "2": "c", "3": "d"}).prepare(), sft.LabelError, "str keys such as '0'"),
    ("label map keyed by numbers, labels are floats", lambda f: Job.from_dataset(Dataset.from_pandas(pd.DataFrame(
        {"text": [f"t{i}" for i in range(20)], "label": [0.5, 1.5] * 10}))).map_labels({"0.5": "a", "1.5": "b"})
     .prepare(), sft.LabelError, "float values such as 0.5"),
]


@pytest.mark.parametrize("name, call, error, value", LOADING, ids=[c[0] for c in LOADING])
def test_reading_refuses_bad_data_with_the_file_and_the_fix(files, name, call, error, value):
    check(lambda: call(files), error, value)


# ---- not errors, but never silent: warnings that quote the value and give a fix --------------------------------
WARNINGS = [
    ("sample larger than its split", lambda f: Dataset.from_pandas(four_classes(40)).sample(train=1000).load(),
     "sample(train=1000): the train split has only 36 rows"),
    ("default split leaves classes out of test", lambda f: Dataset.from_pandas(lonely_classes()).load(),
     "left classes 2, 3 out of the test split"),
    ("overrides that discard weights, on purpose", lambda f: preflight(MODEL, {"hidden_size": 192}, required=True,
                                                                      reinitialize=True),
     "hidden_size=192, reinitialize=True): the pretrained weights of those layers are discarded"),
]


@pytest.mark.parametrize("name, call, value", WARNINGS, ids=[c[0] for c in WARNINGS])
def test_what_is_allowed_but_less_than_asked_is_said(files, name, call, value):
    with pytest.warns(UserWarning) as caught:
        call(files)
    messages = [str(w.message) for w in caught]
    assert any(value in m and "Fix" in m or value in m and "reinitialize=True" in m for m in messages), messages


# ---- plans: local and SageMaker (pure) -------------------------------------------------------------------------
SECRET_TAG = {"owner": HF_TOKEN}
PLANS = [
    ("nodes zero", {"nodes": 0}, sft.ConfigError, "nodes=0"),
    ("instance empty", {"instance": ""}, sft.ConfigError, "or a SageMaker instance type; got ''"),
    ("local epochs option", {"instance": "local", "epochs": 1}, sft.ConfigError, ".hyperparameters(epochs=1)"),
    ("local sagemaker option", {"instance": "local", "spot": True}, sft.ConfigError, "options ['spot']"),
    ("job name", {"job_name": "bad name!"}, sft.ConfigError, "'bad name!'"),
    ("instance typo", {"instance": "ml.p3.16xlarg"}, sft.ConfigError, "'ml.p3.16xlarg'"),
    ("instance without GPU", {"instance": "ml.m5.xlarge"}, sft.ImageError, "ml.m5.xlarge"),
    ("sagemaker epochs option", {"epochs": 1}, sft.ConfigError, ".hyperparameters(epochs=1)"),
    ("option typo", {"spto": True}, sft.ConfigError, "'spto'"),
    ("spot as text", {"spot": "false"}, sft.ConfigError, "'false'"),
    ("isolation as text", {"network_isolation": "yes"}, sft.ConfigError, "'yes'"),
    ("encryption as int", {"encrypt_inter_node": 1}, sft.ConfigError, "got 1 (int)"),
    ("max_run nan", {"max_run": math.nan}, sft.ConfigError, "max_run=nan"),
    ("max_run words", {"max_run": "forever"}, sft.ConfigError, "'forever'"),
    ("max_run zero", {"max_run": 0}, sft.ConfigError, "max_run=0"),
    ("max_wait without spot", {"max_wait": "1h"}, sft.ConfigError, "'1h'"),
    ("max_wait below max_run", {"spot": True, "max_run": "2h", "max_wait": "1h"}, sft.ConfigError, "max_wait=3600s"),
    ("volume zero", {"volume_size": 0}, sft.ConfigError, "volume_size=0"),
    ("tags as a list", {"tags": ["team=nlp"]}, sft.ConfigError, "['team=nlp']"),
    ("tag value a number", {"tags": {"team": 1}}, sft.ConfigError, "got {'team': 1}"),
    ("token in a tag", {"tags": SECRET_TAG}, sft.ConfigError, "'owner'"),
    ("environment as a list", {"environment": ["A=1"]}, sft.ConfigError, "['A=1']"),
    ("environment as a list with a token", {"environment": [f"HF_TOKEN={HF_TOKEN}"]}, sft.ConfigError,
     "['HF_TOKEN=***']"),
    ("token in the environment", {"environment": {"HF_TOKEN": "x"}}, sft.ConfigError, "'HF_TOKEN'"),
    ("role a number", {"role": 123}, sft.ConfigError, "role=123"),
    ("role a name", {"role": "my-role"}, sft.ConfigError, "'my-role'"),
    ("bucket a uri", {"bucket": "s3://my-bucket/data"}, sft.ConfigError, "s3://my-bucket/data"),
    ("bucket capitals", {"bucket": "My_Bucket"}, sft.ConfigError, "'My_Bucket'"),
    ("subnet id", {"subnets": ["sn-1"], "security_groups": ["sg-1"]}, sft.ConfigError, "'sn-1'"),
    ("subnets without groups", {"subnets": "subnet-1"}, sft.ConfigError, "['subnet-1']"),
    ("subnets as text", {"subnets": "subnet-abc", "security_groups": ["sg-1"]}, sft.ConfigError,
     "subnets=['subnet-abc']"),
    ("security groups as text", {"subnets": ["subnet-abc"], "security_groups": "sg-1,sg-2"}, sft.ConfigError,
     "security_groups=['sg-1', 'sg-2']"),
    ("negative price", {"price_per_hour": -1}, sft.ConfigError, "got -1"),
    ("infinite price", {"price_per_hour": math.inf}, sft.ConfigError, "got inf"),
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
    message = check(lambda: small().plan(instance=instance, **options), error, value)
    assert HF_TOKEN not in message  # a secret is never repeated (tests/test_secrets.py sweeps every builder)


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


def s3_reviews(moto, train: bytes, test: bytes) -> Job:
    """A job on from_s3 CSV files (columns body, stars) put in the moto server's corp-data bucket."""
    s3 = moto.session().client("s3")
    s3.create_bucket(Bucket="corp-data")
    s3.put_object(Bucket="corp-data", Key="reviews/train/part-0.csv", Body=train)
    s3.put_object(Bucket="corp-data", Key="reviews/test/part-0.csv", Body=test)
    moto.sent.clear()
    data = Dataset.from_s3(train="s3://corp-data/reviews/train/", test="s3://corp-data/reviews/test/").columns(
        text="body", label="stars")
    return Job.from_dataset(data).map_labels({1: "negative", 5: "positive"})


SAGEMAKER_FITS = [
    ("no role", lambda moto: small(), {"role": None}, sft.CredentialsError, "no SageMaker execution role"),
    ("missing bucket", lambda moto: small(), {"bucket": "no-such-bucket"}, sft.AWSError, "'no-such-bucket'"),
    ("labels outside the map", lambda moto: small().map_labels({0: "business", 1: "entertainment"}), {},
     sft.LabelError, "not in the label map {0, 1}: the train split: 2 ("),
    ("config field typo", lambda moto: small().model(MODEL, num_hiden_layers=1), {}, sft.ConfigError,
     "did you mean 'num_hidden_layers'?"),
    ("config changes a weight's shape", lambda moto: small().model(MODEL, hidden_size=192), {}, sft.ConfigError,
     "hidden_size=192"),
    ("config adds layers", lambda moto: small().model(MODEL, num_hidden_layers=8), {}, sft.ConfigError,
     "num_hidden_layers=8, reinitialize=True"),
    ("config splits attention heads", lambda moto: small().model(MODEL, num_attention_heads=6), {}, sft.ConfigError,
     "num_attention_heads: 12 -> 6"),
    # issue 17: from_s3 labels are read before the job (tests/backends/test_s3_labels.py: formats, byte ranges)
    ("from_s3 labels outside the map", lambda moto: s3_reviews(moto, b"body,stars\ngood,5\nbad,1\nmeh,3\n",
                                                                 b"body,stars\nfine,5\nodd,7\n"), {},
     sft.LabelError, "the train split: 3 (1 row); the test split: 7 (1 row)"),
]


@pytest.mark.parametrize("name, make, options, error, value", SAGEMAKER_FITS, ids=[c[0] for c in SAGEMAKER_FITS])
def test_sagemaker_fit_refuses_before_upload_or_job(moto, name, make, options, error, value):
    check(lambda: fit_sagemaker(moto, make(moto), **options), error, value)
    writes = [c for c in moto.sent if c in ("PutObject", "CreateMultipartUpload", "CreateBucket")]
    assert not writes and "CreateTrainingJob" not in moto.sent, sorted(moto.sent)


def test_no_default_bucket_says_so_and_how_to_pass_one(moto, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: STS and S3 cannot be reached
    session = moto.session()
    with pytest.raises(sft.AWSError) as caught:
        small().fit(instance="ml.g5.xlarge", boto_session=session, progress=False, role=aws.ROLE)
    message = str(caught.value)
    assert "no default bucket could be found in us-east-1" in message and "bucket='my-bucket'" in message
    assert "Fix" in message and "http://" not in message and "Could not connect" not in message


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
@pytest.mark.parametrize("inputs, value", [([("one",)], "got ('one',)"), (123, "got 123"),
                                            ([1, 2], "one text per input; got 1 (input 0)"),
                                            (["a text", " "], "input 1 is empty or whitespace only")])
def test_predict_refuses_inputs_it_cannot_read(trained_run, inputs, value):
    check(lambda: trained_run.predictor().predict(inputs), sft.ConfigError, value)


def settings_only(pairs: bool) -> Predictor:
    """A Predictor that knows only its settings: enough to check its inputs, no model loaded."""
    predictor = Predictor.__new__(Predictor)
    predictor.settings = {"text_pair": pairs}
    return predictor


PREDICT_INPUTS = [
    ("a tuple, single-text model", False, ("a text", "another text"), "predict(['a text', 'another text'])"),
    ("one text, pair model", True, ["just one text"], "'just one text'"),
]


@pytest.mark.parametrize("name, pairs, inputs, value", PREDICT_INPUTS, ids=[c[0] for c in PREDICT_INPUTS])
def test_predict_checks_its_inputs_before_the_model_runs(name, pairs, inputs, value):
    check(lambda: settings_only(pairs)._inputs(inputs), sft.ConfigError, value)
    if pairs:  # for a pair model a tuple is one pair; several go in a list
        assert settings_only(True)._inputs(("premise", "hypothesis")) == [("premise", "hypothesis")]


@pytest.mark.slow
def test_a_tuple_of_texts_is_refused_by_a_single_text_model(trained_run):
    check(lambda: trained_run.predictor().predict(("The striker scored twice.", "A new phone was launched.")),
          sft.ConfigError, "not trained on sentence pairs")
    out = trained_run.predictor().predict(["The striker scored twice.", "A new phone was launched."])
    assert [p["label"] for p in out] == ["sports", "tech"]
