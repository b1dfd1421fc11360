"""Edits to an exported ONNX graph that make ONNX Runtime faster on the CPU without changing what the model answers.

    edit_for_cpu(Path("model.onnx"))    # in place, both edits below; run.export() applies it to every export
    clamp_softmax(Path("model.onnx"))   # only the Softmax clamp

Measured in ``benchmarks/onnx_fusion.py`` (docs: benchmarks, "Which ONNX graph runs fastest").
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["SOFTMAX_FLOOR", "clamp_softmax", "fold_attention_heads", "edit_for_cpu"]

SOFTMAX_FLOOR = 80.0  # softmax inputs below their row's max minus this are raised to it (exp(-80) > float32's min)


def edit_for_cpu(path: Path) -> dict[str, int]:
    """Both edits, in place, in one load and save: the graph's opset, how many attention nodes took their heads'
    split inside, and how many Softmax inputs were clamped. Recorded shapes go."""
    import onnx

    model = onnx.load(str(path))
    edits = {"opset": _opset(model), "attention_heads_folded": fold_attention_heads(model),
             "softmax_clamped": _clamp(model)}
    onnx.save(model, str(path))
    return edits


def clamp_softmax(path: Path) -> None:
    """Each Softmax's input raised, in place, to at least its row's max minus :data:`SOFTMAX_FLOOR`: padding's masked
    scores make exp underflow into denormals, 5-10x slower in ONNX Runtime. The weights this changes stay below
    exp(-80); graphs before opset 13 (another Softmax) are left as they are. Recorded shapes go."""
    import onnx

    model = onnx.load(str(path))
    _clamp(model)
    onnx.save(model, str(path))


def _clamp(model: Any) -> int:
    import numpy as np
    from onnx import helper, numpy_helper

    graph, nodes = model.graph, []
    del graph.value_info[:]
    opset = _opset(model)
    for i, node in enumerate(graph.node):
        if node.op_type == "Softmax" and node.domain in ("", "ai.onnx") and opset >= 13:
            axis, tag = next((a.i for a in node.attribute if a.name == "axis"), -1), f"softmax_clamp_{i}"
            if opset >= 18:  # ReduceMax takes its axes as an input from opset 18
                graph.initializer.append(numpy_helper.from_array(np.array([axis], dtype=np.int64), f"{tag}_axes"))
                top = helper.make_node("ReduceMax", [node.input[0], f"{tag}_axes"], [f"{tag}_max"], keepdims=1)
            else:
                top = helper.make_node("ReduceMax", [node.input[0]], [f"{tag}_max"], axes=[axis], keepdims=1)
            nodes += [top, helper.make_node("Sub", [f"{tag}_max", "softmax_floor"], [f"{tag}_low"]),
                      helper.make_node("Max", [node.input[0], f"{tag}_low"], [f"{tag}_in"])]
            node.input[0] = f"{tag}_in"
        nodes.append(node)
    clamped = (len(nodes) - len(graph.node)) // 3
    if clamped:
        graph.initializer.append(numpy_helper.from_array(np.array(SOFTMAX_FLOOR, dtype=np.float32), "softmax_floor"))
    del graph.node[:]
    graph.node.extend(nodes)
    return clamped


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def fold_attention_heads(model: Any) -> int:
    """ONNX ``Attention`` nodes (opset 23+, what the exporter writes for scaled dot-product attention) fed by the
    head split (``Reshape`` to [batch, sequence, heads, head size], then ``Transpose`` to heads first) take the 3D
    tensors instead, with ``q_num_heads``/``kv_num_heads`` set, and write the 3D output the ``Transpose`` and
    ``Reshape`` after them made: ONNX Runtime's kernel splits the heads itself, without the copies (about 10% of an
    int8 forward pass of short texts). The heads and ranks come from the shapes the exporter recorded; an attention
    whose shapes are not recorded, or whose tensors have other users, is left as it is. Returns how many were
    folded."""
    from onnx import helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    users: collections.Counter[str] = collections.Counter(name for node in graph.node for name in node.input)
    users.update(out.name for out in graph.output)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in (*graph.input, *graph.value_info, *graph.output)}
    heads_of = {v.name: v.type.tensor_type.shape.dim[1].dim_value for v in graph.value_info
                if len(v.type.tensor_type.shape.dim) == 4}
    consumer = {name: node for node in graph.node for name in node.input}
    dropped: list[Any] = []  # the head split and merge nodes of folded attentions
    folded = 0
    for node in graph.node:
        if node.op_type != "Attention" or node.domain not in ("", "ai.onnx") or len(node.input) < 3 or \
                any(node.output[1:]):
            continue
        q, k, v = (_head_split(name, producer, users, heads_of) for name in node.input[:3])
        merge = _head_merge(node.output[0], consumer, users)
        if merge is None or q is None or k is None or v is None or k.heads != v.heads or \
                any(ranks.get(name) != 3 for name in (q.flat, k.flat, v.flat, merge[1].output[0])):
            continue  # only [batch, sequence, hidden] tensors in and out, as recorded, are handed to the node
        node.input[0], node.input[1], node.input[2] = q.flat, k.flat, v.flat
        node.attribute.extend([helper.make_attribute("q_num_heads", q.heads),
                               helper.make_attribute("kv_num_heads", k.heads)])
        node.output[0] = merge[1].output[0]  # the name the merge's Reshape wrote, which its readers read
        dropped += q.nodes + k.nodes + v.nodes + merge
        folded += 1
    if folded:
        _drop(graph, dropped)
    return folded


class _Split(NamedTuple):
    flat: str  # the [batch, sequence, heads x head size] tensor before the split
    heads: int
    nodes: list[Any]  # the split's Transpose and Reshape


def _head_split(name: str, producer: dict[str, Any], users: collections.Counter[str],
                heads_of: dict[str, int]) -> _Split | None:
    """The head split that wrote ``name`` (Transpose(0, 2, 1, 3) of a Reshape), else None."""
    transpose = producer.get(name)
    if transpose is None or transpose.op_type != "Transpose" or _perm(transpose) != [0, 2, 1, 3] or users[name] != 1:
        return None
    reshape = producer.get(transpose.input[0])
    if reshape is None or reshape.op_type != "Reshape" or users[reshape.output[0]] != 1 or not heads_of.get(name):
        return None
    return _Split(reshape.input[0], heads_of[name], [transpose, reshape])


def _head_merge(name: str, consumer: dict[str, Any], users: collections.Counter[str]) -> list[Any] | None:
    """(Transpose, Reshape) where the attention output ``name`` only goes through Transpose(0, 2, 1, 3) then a
    Reshape (back to [batch, sequence, hidden]), else None."""
    transpose = consumer.get(name)
    if transpose is None or transpose.op_type != "Transpose" or _perm(transpose) != [0, 2, 1, 3] or users[name] != 1:
        return None
    reshape = consumer.get(transpose.output[0])
    if reshape is None or reshape.op_type != "Reshape" or users[transpose.output[0]] != 1:
        return None
    return [transpose, reshape]


def _perm(node: Any) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])


def _drop(graph: Any, dropped: list[Any]) -> None:
    """Remove the ``dropped`` nodes, then every node nothing reads any more (the shape arithmetic of the split)."""
    gone = {id(node) for node in dropped}
    nodes = [n for n in graph.node if id(n) not in gone]
    needed = {out.name for out in graph.output}
    kept = []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.value_info[:]
