"""Edits to an exported ONNX graph that make ONNX Runtime faster on the CPU without changing what the model answers.

    clamp_softmax(Path("model.onnx"))   # in place; run.export() applies it to every export

Measured in ``benchmarks/onnx_fusion.py`` (docs: benchmarks, "Which ONNX graph runs fastest").
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SOFTMAX_FLOOR", "clamp_softmax"]

SOFTMAX_FLOOR = 80.0  # softmax inputs below their row's max minus this are raised to it (exp(-80) > float32's min)


def clamp_softmax(path: Path) -> None:
    """Each Softmax's input raised, in place, to at least its row's max minus :data:`SOFTMAX_FLOOR`: padding's masked
    scores make exp underflow into denormals, 5-10x slower in ONNX Runtime. The weights this changes stay below
    exp(-80); graphs before opset 13 (another Softmax) are left as they are. Recorded shapes go."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph, nodes = model.graph, []
    del graph.value_info[:]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
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
    if len(nodes) > len(graph.node):
        graph.initializer.append(numpy_helper.from_array(np.array(SOFTMAX_FLOOR, dtype=np.float32), "softmax_floor"))
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))
