"""The request limits of the serving handler: JSON nesting. No model: the handler's parsing needs none."""

from __future__ import annotations

import json
import random
import time

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
