"""No secret ever reaches a message, a repr, a plan, a log line or a model card.

Known fake secrets go through the error paths of every builder that takes user text (environment, tags,
hyperparameters, model config overrides, push_to_hub, Endpoint.from_model, the Dataset constructors); each error's
message and repr, everything written to stderr and every log record must hold none of them. The redaction function
itself (``sagefinetune.entrypoint.redaction``) is tested for what it masks and for the ordinary names it leaves alone.
"""

from __future__ import annotations

import logging
import traceback

import pytest
from conftest import MODEL

import sagefinetune as sft
from sagefinetune import Dataset, Endpoint, Job
from sagefinetune.entrypoint.redaction import MASK, RedactingFilter, is_secret_name, redact, redact_value
from sagefinetune.hub.push import push_to_hub

HUB = "hf_" + "Zq9xW2vL7kP3mN8bR4tY6uJ1hG5fD0sA"  # the shape of a Hub token: hf_ and 34 letters and digits
KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
SESSION_KEY_ID = "ASIA" + "Y34FZKBOKMUTVV7A"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDyXMv8Lj3+b8dCJFz5ZtMMy9aQj3E6u7k7cSbPV0uP" \
                "KAIgeY5AZzXF2fMc2T1ixnQ4Lm0Zx7Pq2Rt9Ws8Vd1Yb3Kc6Jf=="
PASSWORD = "correct-horse-battery-staple"  # an ordinary-looking value: only its name says it is a secret
SECRETS = (HUB, KEY_ID, SESSION_KEY_ID, SECRET_KEY, SESSION_TOKEN, PASSWORD)


def small() -> Job:
    return Job.from_dataset(Dataset.example("bbc_news").sample(train=60, test=20, seed=1)).hyperparameters(epochs=1)


def on_sagemaker(**options):
    return lambda: small().plan(instance="ml.g5.xlarge", **options)


# ---- every error path that takes user text ---------------------------------------------------------------------
CALLS = [
    # environment and tags: SageMaker records both in plain text
    ("environment as a list", on_sagemaker(environment=[f"HF_TOKEN={HUB}", f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}"])),
    ("environment, a token by name", on_sagemaker(environment={"HF_TOKEN": HUB})),
    ("environment, a token by value", on_sagemaker(environment={"MODEL_AUTH": HUB})),
    ("environment, a number", on_sagemaker(environment={"DB_PASSWORD": PASSWORD, "N": 1})),
    ("environment, AWS keys", on_sagemaker(environment={"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SESSION_TOKEN": SESSION_TOKEN})),
    ("tags as a list", on_sagemaker(tags=[f"token={HUB}", f"key={SESSION_KEY_ID}"])),
    ("tags, a value", on_sagemaker(tags={"owner": HUB})),
    ("tags, a number", on_sagemaker(tags={"password": PASSWORD, "team": 1})),
    ("tags, a secret key", on_sagemaker(tags={"x": SECRET_KEY})),
    # hyperparameters
    ("hyperparameter wrong type", lambda: small().hyperparameters(epochs=HUB)),
    ("hyperparameter seed", lambda: small().hyperparameters(seed=SESSION_TOKEN)),
    ("hyperparameter unknown", lambda: small().hyperparameters(api_key=PASSWORD)),
    ("hyperparameter as an option", on_sagemaker(epochs=HUB)),
    ("option unknown", on_sagemaker(hf_token=HUB)),
    # model config overrides
    ("config override on SageMaker", lambda: small().model(MODEL, hub_token=HUB).plan(instance="ml.g5.xlarge")),
    ("config override not JSON", lambda: small().model(MODEL, password=PASSWORD, x=object())),
    ("config override a label field", lambda: small().model(MODEL, token=HUB, num_labels=2)),
    ("config override not a field", lambda: small().model(MODEL, api_key=PASSWORD).fit(progress=False)),
    ("model id a token", lambda: small().model(f"someone/{HUB}").fit(progress=False)),
    ("model folder", lambda: small().model(f"./{HUB}")),
    # options whose values are echoed
    ("role", on_sagemaker(role=f"{KEY_ID}:{SECRET_KEY}")),
    ("bucket", on_sagemaker(bucket=f"s3://{HUB}/x")),
    ("region", on_sagemaker(region=SESSION_KEY_ID)),
    ("checkpoint", on_sagemaker(checkpoint_s3=f"https://user:{PASSWORD}@host/ckpt")),
    # push_to_hub (its checks run before the run is looked at)
    ("push repo id", lambda: push_to_hub(None, HUB)),
    ("push repo id in a namespace", lambda: push_to_hub(None, f"me/{HUB}--x")),
    ("push token not text", lambda: push_to_hub(None, "me/model", token=[HUB])),
    ("push revision", lambda: push_to_hub(None, "me/model", token=HUB, revision=f"{HUB}/")),
    ("push commit message", lambda: push_to_hub(None, "me/model", token=HUB, commit_message=[HUB])),
    # Endpoint.from_model
    ("endpoint environment", lambda: Endpoint.from_model("s3://my-bucket/m/model.tar.gz", instance="ml.m5.xlarge",
                                                         environment={"HF_TOKEN": HUB}, wait=False)),
    ("endpoint environment value", lambda: Endpoint.from_model("s3://my-bucket/m/model.tar.gz", instance="ml.m5.xlarge",
                                                               environment={"AUTH": f"Bearer {SESSION_TOKEN}"})),
    ("endpoint tags", lambda: Endpoint.from_model("s3://my-bucket/m/model.tar.gz", instance="ml.m5.xlarge",
                                                  tags={"api_key": PASSWORD})),
    ("endpoint model folder", lambda: Endpoint.from_model(f"./{HUB}", instance="ml.m5.xlarge")),
    ("endpoint instance", lambda: Endpoint.from_model("s3://my-bucket/m/model.tar.gz", instance=SECRET_KEY)),
    # datasets: paths, URIs and reader options
    ("csv path", lambda: Dataset.from_csv(f"/no/such/{HUB}.csv")),
    ("s3 uri", lambda: Dataset.from_s3(train=f"https://{KEY_ID}:{SECRET_KEY}@bucket/train/")),
    ("hub id", lambda: Dataset.from_hub(123, revision=HUB)),
    ("columns", lambda: Dataset.example("imdb").columns(text=[HUB])),
]


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.parametrize("name, call", CALLS, ids=[c[0] for c in CALLS])
def test_no_error_message_repeats_a_secret(name, call, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(sft.SagefinetuneError) as caught:
        call()
    exc = caught.value
    out = capsys.readouterr()
    written = [str(exc), repr(exc), "".join(traceback.format_exception_only(type(exc), exc)), out.out, out.err,
               caplog.text]
    assert not leaks("\n".join(written)), f"{name}: {leaks(chr(10).join(written))} in {written}"
    assert "Fix" in str(exc) or MASK in str(exc) or name.startswith(("push", "endpoint instance")), str(exc)


def test_the_list_of_environment_variables_is_masked_not_dropped():
    with pytest.raises(sft.ConfigError) as caught:
        on_sagemaker(environment=[f"HF_TOKEN={HUB}", "MY_FLAG=1"])()
    message = str(caught.value)
    assert "['HF_TOKEN=***', 'MY_FLAG=1']" in message and "Fix: environment={" in message


# ---- reprs and plans that hold secrets without an error ----------------------------------------------------------
def test_reprs_and_plans_hold_no_secret():
    ds = Dataset.from_s3(train="s3://my-bucket/train/").columns(text="body")
    job = Job.from_dataset(ds).map_labels({1: "a", 2: "b"}).model(MODEL, hub_token=HUB, num_hidden_layers=2)
    local = small().model(MODEL, api_key=PASSWORD)
    csv = Dataset.from_csv(__file__, storage_options={"token": HUB, "secret": SECRET_KEY})
    texts = [repr(job), repr(local), str(local.plan()), repr(local.plan()), repr(csv), repr(Job.from_dataset(csv)),
             repr(sft.Grid(local).over(nodes=[1, 2]))]
    assert not leaks("\n".join(texts)), texts
    assert "hub_token" in repr(job) and "'***'" in repr(job)


def test_a_model_card_holds_no_secret():
    from sagefinetune.runtime.modelcard import RunFacts, card_from_facts

    facts = RunFacts(name="run-1", base_model=MODEL, dataset=f"csv('/data/{HUB}.csv')", dataset_id=None,
                     labels=["a", "b"], problem_type="single_label_classification",
                     hyperparameters={"epochs": "1", "config_overrides": f'{{"hub_token":"{HUB}"}}',
                                      "note": f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}"},
                     metrics={"eval_accuracy": 0.9}, where="this machine", cost="$0.00")
    card = str(card_from_facts(facts, "me/model", picture=False))
    assert not leaks(card) and "epochs" in card


# ---- log lines, the console, the entry point ------------------------------------------------------------------
def test_log_lines_and_console_lines_are_redacted(capsys, caplog):
    from sagefinetune.core.console import say
    from sagefinetune.hub import push  # noqa: F401  (its logger carries the filter)
    from sagefinetune.serving import app  # noqa: F401  (and this one)

    caplog.set_level(logging.INFO)
    logging.getLogger("sagefinetune.hub.push").info("pushing with token=%s and %s", HUB, KEY_ID)
    logging.getLogger("sagefinetune.serving").error("request with HF_TOKEN=%s", HUB)
    say(f"uploading with AWS_SESSION_TOKEN={SESSION_TOKEN}")
    written = caplog.text + capsys.readouterr().err
    assert not leaks(written) and "token=***" in written and "AKIA***" in written


def test_the_entry_point_logs_and_failure_reason_are_redacted(tmp_path, monkeypatch, capsys):
    from sagefinetune.entrypoint import outputs, redaction, training

    training.log(f"model hub_token={HUB}")
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output" / "data"))
    monkeypatch.setattr(outputs, "failure_path", lambda: str(tmp_path / "failure"))
    outputs.write_failure(ValueError(f"could not log in with {HUB}"))
    assert not leaks((tmp_path / "failure").read_text()) and "hf_***" in (tmp_path / "failure").read_text()

    def fails() -> None:
        raise SystemExit(f"the channel needs AWS_SECRET_ACCESS_KEY={SECRET_KEY}")

    with pytest.raises(SystemExit) as caught:
        redaction.run_redacted(fails)
    assert not leaks(str(caught.value.code)) and not leaks(capsys.readouterr().out)


def test_the_redaction_module_ships_with_the_entry_point():
    from pathlib import Path

    import tomllib

    from sagefinetune.backends.sagemaker.source_code import source_files

    for script in ("train.py", "evaluation.py", "check_data.py"):
        assert "redaction.py" in {p.name for p in source_files(script)}, script
    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sagefinetune"]
    assert "entrypoint/*.py" in data


# ---- the function itself ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, kept", [
    (f"HF_TOKEN={HUB}", "HF_TOKEN=***"),
    (f"{{'api_key': '{PASSWORD}', 'max_length': 128}}", "'max_length': 128"),
    (f'{{"AWS_SECRET_ACCESS_KEY": "{SECRET_KEY}"}}', '"AWS_SECRET_ACCESS_KEY": "***"'),
    (f"db_password: {PASSWORD}", "db_password: ***"),
    (f"apiKey={PASSWORD}", "apiKey=***"),
    (f"model(..., client_secret='{PASSWORD}')", "client_secret='***'"),
    (f"keys {KEY_ID} {SESSION_KEY_ID}", "keys AKIA*** ASIA***"),
    (f"alone {SECRET_KEY} here", "alone *** here"),
    (f"x-amz-security-token: {SESSION_TOKEN}", "x-amz-security-token: ***"),
    (f"Authorization: Bearer {PASSWORD}", "Bearer ***"),
    (f"https://alice:{PASSWORD}@example.com/x", "https://alice:***@example.com/x"),
])
def test_redact_masks_secrets_and_keeps_names(text, kept):
    out = redact(text)
    assert not leaks(out) and kept in out, out


@pytest.mark.parametrize("text", [
    "max_length=128 batch_size=32 cache_tokens=True",          # hyperparameters
    "columns(text='key_phrase', label='keyword')",             # columns named key...
    "{'key_phrase': 'great acting', 'label': 1}",               # ... and a row that has one
    "pad_token='[PAD]' eos_token_id=2 tokenizer='bert'",       # special tokens of a model config
    "volume_kms_key='alias/my-key' output_kms_key='arn:aws:kms:us-east-1:1:key/abc'",
    "sentence-transformers/all-MiniLM-L6-v2 at commit 3f1c2a4b5d6e7f8091a2b3c4d5e6f708192a3b4c",  # a git sha
    "s3://my-bucket/sagefinetune/data/0123456789abcdef/train/",
    "Fix: token='hf_...', or leave it out to use the login; no token=..., no HF_TOKEN",  # placeholders
    "NoCredentialsError: Unable to locate credentials. Fix: aws configure",
    "monkey=1 hotkey=2 sort_key='date'",
])
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_secret_names():
    assert all(map(is_secret_name, ["HF_TOKEN", "token", "hub_token", "apiKey", "API_KEY", "AWS_SECRET_ACCESS_KEY",
                                    "aws_session_token", "DB_PASSWORD", "passwd", "MY_CREDENTIALS", "x-api-key"]))
    assert not any(map(is_secret_name, ["max_length", "key_phrase", "keyword", "cache_tokens", "tokens", "tokenizer",
                                        "pad_token", "pad_token_id", "volume_kms_key", "monkey", "label_key"]))


def test_redact_value_masks_mappings_and_nested_values():
    value = {"HF_TOKEN": HUB, "env": {"api_key": 1234, "FLAG": "1"}, "tags": [f"owner={HUB}"], "max_length": 128}
    assert redact_value(value) == {"HF_TOKEN": MASK, "env": {"api_key": MASK, "FLAG": "1"}, "tags": ["owner=hf_***"],
                                   "max_length": 128}


def test_the_filter_redacts_arguments_and_tracebacks():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "with %s", (HUB,), None)
    try:
        raise RuntimeError(f"password={PASSWORD}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    assert not leaks(record.getMessage()) and not leaks(record.exc_text or "")


def test_ordinary_names_are_not_refused_as_secrets():
    plan = small().hyperparameters(cache_tokens=False).plan(instance="ml.g5.xlarge", tags={"key_phrase": "x"},
                                                            environment={"MAX_TOKENS": "5"})
    assert plan.hyperparameters["cache_tokens"] == "false"


def test_a_traceback_shows_no_secret_in_the_errors_chained_under_ours():
    """An AWSError raised from a botocore error, and a HubError raised while handling one: the traceback prints the
    cause and the context under our message, and they are redacted too (as is what they chain in turn)."""
    from botocore.exceptions import ClientError

    from sagefinetune.errors import AWSError, HubError

    def aws() -> None:
        try:
            try:
                raise KeyError(f"token={HUB}")
            except KeyError:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": f"key {KEY_ID} secret {SECRET_KEY}"}},
                                  "CreateTrainingJob") from None
        except ClientError as exc:
            raise AWSError("CreateTrainingJob failed: access denied", operation="CreateTrainingJob") from exc

    def hub() -> None:
        try:
            raise ConnectionError(f"https://user:{PASSWORD}@hub.example/api?token={HUB}")
        except ConnectionError:
            raise HubError("the Hub could not be reached")  # noqa: B904 - the implicit context is what is tested

    for call in (aws, hub):
        with pytest.raises(sft.SagefinetuneError) as caught:
            call()
        chain = caught.value.__cause__ or caught.value.__context__
        assert chain is not None and "***" in str(chain)
        printed = "".join(traceback.format_exception(caught.value))
        assert not leaks(printed), printed
