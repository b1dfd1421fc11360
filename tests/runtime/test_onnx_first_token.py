"""prune_to_first_token on a one-layer encoder written node by node: what a classifier reads at position 0 is the
same, the layer's work after its keys and values is done for one token, and every graph it must not touch is left
as it was."""

from __future__ import annotations

import numpy as np
import pytest

HIDDEN, HEADS, FEED_FORWARD = 8, 2, 16


def encoder(case: str):
    """x [batch, sequence, 8] and a boolean mask [batch, 1, sequence, sequence] in; a one-layer post-LN encoder (query,
    key, value, Attention, output projection, residual, LayerNorm, feed-forward, residual, LayerNorm); then the
    classifier's read: ``Gather`` of token 0 (``case`` changes one thing)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {f"w_{n}": rng.normal(size=(HIDDEN, HIDDEN)) / 3 for n in "qkvo"}
    weights |= {"w_in": rng.normal(size=(HIDDEN, FEED_FORWARD)) / 3, "w_out": rng.normal(size=(FEED_FORWARD, HIDDEN)) / 4,
                "bias": rng.normal(size=HIDDEN), "ln_scale": 1 + rng.normal(size=HIDDEN) / 10,
                "ln_bias": rng.normal(size=HIDDEN) / 10, "head": rng.normal(size=(HIDDEN, 2))}
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array(-1 if case == "last token" else 0, dtype=np.int64), "position"))
    causal = 1 if case == "causal" else 0
    nodes = [helper.make_node("MatMul", ["x", f"w_{n}"], [f"{n}_flat"]) for n in "qkv"]
    nodes += [
        helper.make_node("Add", ["q_flat", "bias"], ["q"]),
        helper.make_node("Attention", ["q", "k_flat", "v_flat", "mask"], ["attended"], q_num_heads=HEADS,
                         kv_num_heads=HEADS, is_causal=causal),
        helper.make_node("MatMul", ["attended", "w_o"], ["projected"]),
        helper.make_node("Add", ["projected", "x"], ["residual"]),
        helper.make_node("LayerNormalization", ["residual", "ln_scale", "ln_bias"], ["normed"], axis=-1),
        helper.make_node("MatMul", ["normed", "w_in"], ["inner"]),
        helper.make_node("Gelu", ["inner"], ["activated"]),
        helper.make_node("MatMul", ["activated", "w_out"], ["outer"]),
        helper.make_node("Add", ["outer", "normed"], ["hidden"]),
        helper.make_node("Gather", ["hidden", "position"], ["pooled"], axis=1),
        helper.make_node("MatMul", ["pooled", "head"], ["logits"]),
    ]
    three_d = ["batch", "sequence", HIDDEN]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, three_d),
              helper.make_tensor_value_info("mask", TensorProto.BOOL, ["batch", 1, "sequence", "sequence"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])]
    if case == "hidden state out":
        outputs.append(helper.make_tensor_value_info("hidden", TensorProto.FLOAT, three_d))
    recorded = [helper.make_tensor_value_info(n, TensorProto.FLOAT, three_d) for n in
                ("q_flat", "k_flat", "v_flat", "q", "attended", "projected", "residual", "normed", "outer", "hidden")]
    recorded.append(helper.make_tensor_value_info("inner", TensorProto.FLOAT, ["batch", "sequence", FEED_FORWARD]))
    recorded.append(helper.make_tensor_value_info("activated", TensorProto.FLOAT, ["batch", "sequence", FEED_FORWARD]))
    graph = helper.make_graph(nodes, "encoder", inputs, outputs, inits, value_info=recorded)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])


def answers(model_bytes: bytes) -> np.ndarray:
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    lengths = np.array([6, 4, 1])
    mask = np.arange(6)[None, None, None, :] < lengths[:, None, None, None]
    feed = {"x": rng.normal(size=(3, 6, HIDDEN)).astype(np.float32), "mask": np.broadcast_to(mask, (3, 1, 6, 6))}
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(["logits"], feed)[0]


@pytest.mark.parametrize(("case", "pruned"), [
    ("first token", 10),  # the query and its bias, Attention, and all seven nodes after it
    ("causal", 7),  # token 0's causal attention is not a one-row Attention: the nodes after it only
    ("hidden state out", 0),  # every token's hidden state is an output: nothing may go
    ("last token", 0),  # the classifier reads another token
])
def test_the_last_layer_works_for_the_token_the_classifier_reads(case, pruned):
    from sagefinetune.runtime.onnx_graph import prune_to_first_token, recorded_ranks

    model = encoder(case)
    before = model.SerializeToString()
    assert prune_to_first_token(model, recorded_ranks(model.graph)) == pruned
    if not pruned:
        assert model.SerializeToString() == before
        return
    full_rows = {node.output[0] for node in model.graph.node if not node.output[0].endswith("_first_token")}
    # the keys and values of every token stay (token 0 attends to them); nothing else is computed for every token
    assert {"k_flat", "v_flat"} <= full_rows and not full_rows & {"inner", "hidden", "normed", "projected"}
    np.testing.assert_allclose(answers(model.SerializeToString()), answers(before), rtol=1e-5, atol=1e-5)
