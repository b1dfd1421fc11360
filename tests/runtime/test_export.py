"""ONNX export: a real trained model exported (fp32 and int8), checked on its test split, served by Predictor."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sagefinetune as sft
from sagefinetune.runtime.export import ExportReport, check_arguments, check_drop, export, score

TEXTS = ["The striker scored twice as the club won the cup final.", "Shares fell after the bank's profit warning.",
         "The minister defended the new tax in parliament.", "A new smartphone chip doubles battery life."]


# ---- pure checks ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (("torchscript", None, 0.01), "export format 'torchscript' is not supported. Fix: export('onnx')"),
    (("onnx", "int4", 0.01), "quantize='int4' is not supported. Fix: quantize='int8'"),
    (("onnx", None, 5), "max_accuracy_drop=5 must be a fraction in [0, 1]"),
    (("onnx", None, True), "max_accuracy_drop=True must be a fraction"),
    (("onnx", None, -0.1), "max_accuracy_drop=-0.1"),
])
def test_bad_arguments_are_refused_before_anything_loads(args, message):
    with pytest.raises(sft.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_arguments(*args)


def test_a_drop_beyond_the_limit_raises_with_both_scores_and_the_fix():
    report = ExportReport(path=Path("x"), format="onnx", quantize="int8", metric="accuracy", accuracy=0.80,
                           reference_accuracy=0.83, agreement=0.95, rows=400, size_bytes=1, seconds=1.0)
    with pytest.raises(sft.ExportError) as info:
        check_drop(report, 0.01)
    text = str(info.value)
    assert "accuracy 0.8000 on 400 test rows, 3.00 points below the PyTorch model's 0.8300" in text
    assert "limit is 1.00 points" in text and "Fix: export without int8 weights (quantize=None)" in text
    assert (info.value.reference, info.value.exported, info.value.limit, info.value.rows) == (0.83, 0.80, 0.01, 400)
    check_drop(report, 0.03)  # within the limit: no error


def test_multi_label_score_is_micro_f1():
    import numpy as np

    predicted = np.array([[1, 0, 1], [0, 1, 0]])
    labels = np.array([[1, 0, 0], [0, 1, 1]])
    assert score(predicted, labels, multi=True) == pytest.approx(2 * 2 / (3 + 3))
    assert score(np.array([0, 1, 2]), np.array([0, 1, 1]), multi=False) == pytest.approx(2 / 3)


# ---- a real export ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [17, 18])  # ReduceMax takes its axes as an attribute, then as an input
def test_clamped_softmax_gives_softmax_and_keeps_masked_scores_out_of_denormals(tmp_path, opset):
    """clamp_softmax on a one-node graph: a masked score (float32's minimum, as attention masks write it) still gets
    a weight of 0, every other weight is softmax's, and the input exp sees is never below the row max - 80."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from sagefinetune.runtime.onnx_graph import SOFTMAX_FLOOR, clamp_softmax

    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "n"])
    weights = helper.make_tensor_value_info("weights", TensorProto.FLOAT, ["batch", "n"])
    graph = helper.make_graph([helper.make_node("Softmax", ["scores"], ["weights"], axis=-1)], "g", [scores], [weights])
    path = tmp_path / "softmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    clamp_softmax(path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops == ["ReduceMax", "Sub", "Max", "Softmax"], ops

    lowest = np.finfo(np.float32).min
    x = np.array([[1.0, 2.0, lowest, lowest], [0.5, -3.0, 7.0, 100.0], [-200.0, 0.0, 1.0, lowest]], dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"scores": x})[0]
    floor = x.max(-1, keepdims=True) - SOFTMAX_FLOOR
    expected = np.exp(np.maximum(x, floor) - x.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-30)
    exact = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    np.testing.assert_allclose(got, exact / exact.sum(-1, keepdims=True), atol=1e-30, rtol=1e-6)


@pytest.mark.parametrize("case", ["folds", "shared", "no ranks"])
def test_attention_takes_its_heads_split_inside_and_answers_the_same(tmp_path, case):
    """fold_attention_heads on one opset-23 Attention over a masked batch: the heads' Reshape and Transpose go (in and
    out) and the output is the same; where the split's output has another reader, or the inputs' ranks are not
    recorded, the graph is left as it is."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from sagefinetune.runtime.onnx_graph import fold_attention_heads

    def split(name):
        return [helper.make_node("Reshape", [name, "split_shape"], [f"{name}_4d"]),
                helper.make_node("Transpose", [f"{name}_4d"], [f"{name}_heads"], perm=[0, 2, 1, 3])]

    nodes = [*split("q"), *split("k"), *split("v"),
             helper.make_node("Attention", ["q_heads", "k_heads", "v_heads", "mask"], ["heads_out"]),
             helper.make_node("Transpose", ["heads_out"], ["out_4d"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["out_4d", "merge_shape"], ["out"])]
    shape = None if case == "no ranks" else ["b", "s", 8]
    flat = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("q", "k", "v")]
    mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, ["b", 1, "s", "s"])
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "s", 8])]
    if case == "shared":
        outputs.append(helper.make_tensor_value_info("q_heads", TensorProto.FLOAT, ["b", 2, "s", 4]))
    shapes = [numpy_helper.from_array(np.array(v, dtype=np.int64), n)
              for n, v in (("split_shape", [0, 0, 2, 4]), ("merge_shape", [0, 0, 8]))]
    recorded = [helper.make_tensor_value_info(f"{n}_heads", TensorProto.FLOAT, ["b", 2, "s", 4]) for n in "qkv"]
    graph = helper.make_graph(nodes, "g", [*flat, mask], outputs, shapes, value_info=recorded)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    before = model.SerializeToString()

    folded = fold_attention_heads(model)
    ops = [n.op_type for n in model.graph.node]
    assert (folded, ops) == ((1, ["Attention"]) if case == "folds" else (0, [n.op_type for n in nodes]))
    rng = np.random.default_rng(0)
    feed = {n: rng.normal(size=(3, 5, 8)).astype(np.float32) for n in "qkv"}
    lengths = np.array([5, 3, 1])
    feed["mask"] = np.broadcast_to(np.arange(5)[None, None, None, :] < lengths[:, None, None, None], (3, 1, 5, 5))
    run = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(["out"], feed)[0]
           for m in (before, model.SerializeToString())]
    np.testing.assert_allclose(run[1], run[0], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="session")
def onnx_int8(trained_run):
    return trained_run.export("onnx", quantize="int8")


@pytest.mark.slow
def test_int8_export_keeps_accuracy_and_answers_like_pytorch(trained_run, onnx_int8):
    exported = onnx_int8
    assert exported.path == trained_run.run_dir / "onnx-int8"
    names = {p.name for p in exported.path.iterdir()}
    assert {"model.onnx", "tokenizer.json", "config.json", "sagefinetune.json", "export.json"} <= names
    assert not any(n.startswith(".") for n in names) and not list(trained_run.run_dir.glob(".onnx*partial*"))
    # the reference is the run's own model on its own test split: the number training reported
    assert exported.reference_accuracy == pytest.approx(trained_run.metrics["eval_accuracy"], abs=0.006)
    assert exported.rows == 200 and exported.drop <= 0.01 and exported.agreement >= 0.95
    weights = (trained_run.model_dir / "model.safetensors").stat().st_size
    assert exported.size_bytes < weights / 2.5  # int8 weights (the embeddings stay fp32)
    assert json.loads((exported.path / "export.json").read_text())["accuracy"] == exported.accuracy

    torch_out = trained_run.predictor().predict(TEXTS, all_scores=True)
    predictor = exported.predictor()
    assert predictor.runtime.name == "onnx" and predictor.labels == trained_run.predictor().labels
    onnx_out = predictor.predict(TEXTS, all_scores=True)
    for mine, theirs in zip(torch_out, onnx_out):
        assert [s["label"] for s in mine][:1] == [s["label"] for s in theirs][:1]
        assert sorted(s["label"] for s in theirs) == sorted(s["label"] for s in mine)
        assert all(isinstance(s["score"], float) for s in theirs)
        assert sum(s["score"] for s in theirs) == pytest.approx(1.0, abs=1e-4)
    assert predictor.predict(TEXTS[0])[0]["label"] == "sports"  # same JSON as the PyTorch predictor's
    # one input per int8 pass: a text's scores do not depend on what is sent with it
    import numpy as np

    texts = TEXTS + [t.upper() for t in TEXTS] + [t[: len(t) // 2] for t in TEXTS]
    together = predictor.runtime.probabilities(texts)
    alone = np.concatenate([predictor.runtime.probabilities([t]) for t in texts])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.slow
def test_fp32_export_scores_as_pytorch_does(trained_run, tmp_path):
    exported = export(trained_run.model_dir, "onnx", path=tmp_path / "fp32",
                                 test_data=trained_run.run_dir / "input" / "data" / "test")
    assert exported.quantize is None and exported.agreement == 1.0 and exported.drop == 0
    settings = json.loads((exported.path / "sagefinetune.json").read_text())
    layers = json.loads((trained_run.model_dir / "config.json").read_text())["num_hidden_layers"]
    # opset 23: every layer's attention is one Attention node that splits its heads itself, no Softmax left to clamp
    assert settings["onnx"]["opset"] == 23 and settings["onnx"]["attention_heads_folded"] == layers
    assert settings["onnx"]["revision"] == 3
    # BERT's pooler reads token 0: the last layer's query, attention, projection, feed-forward and norms for it alone
    assert settings["onnx"]["first_token_nodes"] == 14
    assert settings["onnx"]["softmax_clamped"] == 0 and settings["onnx"]["softmax_floor"] == 80.0
    from sagefinetune.runtime.loading import TorchRuntime, load_runtime

    reference, onnx_runtime = TorchRuntime(trained_run.model_dir, precision="fp32"), load_runtime(exported.path)
    padded = reference.encode(TEXTS)  # one batch, padded to its longest text: the mask must hide the padding
    assert padded["attention_mask"].min() == 0
    assert abs(onnx_runtime.logits(padded) - reference.logits(padded)).max() < 1e-4
    torch_out = trained_run.predictor(precision="fp32").predict(TEXTS, all_scores=True)  # the export computes in fp32
    onnx_out = sft.Predictor(exported.path).predict(TEXTS, all_scores=True)
    for mine, theirs in zip(torch_out, onnx_out):
        assert [s["label"] for s in mine] == [s["label"] for s in theirs]
        assert [s["score"] for s in mine] == pytest.approx([s["score"] for s in theirs], abs=1e-4)


@pytest.mark.slow
def test_a_model_the_exporter_cannot_write_at_opset_23_is_exported_at_its_default(trained_run, tmp_path, monkeypatch,
                                                                                   capsys):
    import torch

    real = torch.onnx.export

    def no_opset_23(*args, **kwargs):
        if kwargs.get("opset_version") == 23:
            raise NotImplementedError("no translation for this model at opset 23")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", no_opset_23)
    exported = export(trained_run.model_dir, "onnx", path=tmp_path / "fp32",
                      test_data=trained_run.run_dir / "input" / "data" / "test")
    settings = json.loads((exported.path / "sagefinetune.json").read_text())["onnx"]
    assert 18 <= settings["opset"] < 23 and settings["attention_heads_folded"] == 0 and settings["revision"] == 3
    assert settings["first_token_nodes"] > 0  # without an Attention node: from the attention's output projection on
    assert exported.agreement == 1.0 and exported.drop == 0  # the same answers, through the older graph
    assert "could not write BertForSequenceClassification at opset 23 (NotImplementedError" in capsys.readouterr().err


@pytest.mark.slow
def test_an_export_that_loses_accuracy_fails_and_leaves_nothing(trained_run, onnx_int8, tmp_path):
    """Rows that PyTorch gets right and int8 gets wrong: the int8 export, checked on them, must fail."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sagefinetune.runtime.export import read_rows
    from sagefinetune.runtime.loading import load_runtime

    test_file = trained_run.run_dir / "input" / "data" / "test" / "data.parquet"
    reference, exported = load_runtime(trained_run.model_dir), load_runtime(onnx_int8.path)
    items, labels = read_rows(test_file, reference)
    right = reference.probabilities(items).argmax(-1) == labels
    wrong = exported.probabilities(items).argmax(-1) != labels
    picked = [i for i in range(len(items)) if right[i] and wrong[i]]
    if not picked:
        pytest.skip("int8 flips no row of this run's test split")
    hard = pq.read_table(test_file).take(pa.array(picked * 2 + [i for i in range(len(items)) if right[i]][:10]))
    pq.write_table(hard, tmp_path / "hard.parquet")
    with pytest.raises(sft.ExportError, match="points below the PyTorch model's 1.0000") as info:
        trained_run.export("onnx", quantize="int8", path=tmp_path / "out", test_data=tmp_path / "hard.parquet")
    assert info.value.reference == 1.0 and info.value.exported < 0.99
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.slow  # trained_run: a real fine-tune, about 145 s on 2 cores
def test_export_refuses_what_it_cannot_check(trained_run, tmp_path):
    bare = tmp_path / "bare" / "model"
    shutil.copytree(trained_run.model_dir, bare)
    with pytest.raises(sft.ConfigError, match=r"no test rows to check the export on.*Fix: export\(\.\.\., test_data="):
        export(bare, "onnx")
    (tmp_path / "rows.csv").write_text("review,stars\nfine,5\n")
    with pytest.raises(sft.ConfigError, match=r"has no column\(s\) \['text', 'label'\]"):
        export(bare, "onnx", test_data=tmp_path / "rows.csv")
    (tmp_path / "rows.csv").write_text("text,label\nfine,weather\n")
    with pytest.raises(sft.ConfigError, match="label 'weather', which is neither a class name"):
        export(bare, "onnx", test_data=tmp_path / "rows.csv")
    with pytest.raises(sft.ConfigError, match="is the model folder itself"):
        export(bare, "onnx", path=bare, test_data=trained_run.run_dir / "input" / "data" / "test")


@pytest.mark.slow
def test_onnx_predictions_import_neither_torch_nor_transformers(onnx_int8):
    code = ("import sys, json, sagefinetune as sft; p = sft.Predictor(sys.argv[1]); out = p.predict(['a film']); "
            "print(json.dumps([p.runtime.name, sorted(m for m in ('torch', 'transformers') if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", code, str(onnx_int8.path)], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["onnx", []]


@pytest.mark.slow
def test_the_local_endpoint_and_batch_predictions_serve_the_export_with_the_same_json(trained_run, onnx_int8, tmp_path):
    import urllib.request

    from sagefinetune.serving import batch_predict_local

    expected = trained_run.predictor().predict(TEXTS)
    with onnx_int8.deploy() as ep:
        request = urllib.request.Request(f"{ep.url}/invocations", data=json.dumps({"inputs": TEXTS}).encode(),
                                         headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=60) as response:
            body = json.loads(response.read())
        top2 = ep.predict(TEXTS[:1], top_k=2)
        log = ep.log_path.read_text()
    assert [set(item) for item in body] == [{"label", "score"}] * len(TEXTS)
    assert [item["label"] for item in body] == [item["label"] for item in expected]
    assert len(top2[0]) == 2 and top2[0][0]["label"] == expected[0]["label"]
    assert "ONNX Runtime int8" in log
    out = batch_predict_local(onnx_int8.path, TEXTS, tmp_path / "preds.jsonl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["label"] for line in lines] == [item["label"] for item in expected]
