"""ONNX int8 export variants of one fine-tuned model: which exporter and which ONNX Runtime fusions make it fastest.

    python benchmarks/onnx_fusion.py sft-runs/onnx-bench/model [--test FILE] [--rounds 7] [--rows 500]

For each variant (exporter x attention implementation x fusion x quantization) the script builds ``model.onnx`` from
the model folder, then prints: the fused operators it holds, the median milliseconds per batch of real test texts at
batch 1, 8 and 16 on one thread and on two, the largest absolute logit difference to the PyTorch fp32 model on the
test rows (run in padded batches of 16, longest first, as the runtime does) and how often the two argmaxes agree.
Variants are timed in turns, round after round, in a new order each round, so that a busy machine slows them alike.

Exporters: ``dynamo`` is ``torch.onnx.export(dynamo=True)`` (what sagefinetune uses);
``script`` is the TorchScript exporter (``dynamo=False``, opset 17). ``sdpa``/``eager`` is the attention
implementation the model is loaded with. Fusion: ONNX Runtime's ``optimize_model(model_type="bert", opt_level=1)``;
``rawmask`` keeps the 2D attention mask (any padding side) instead of the sequence lengths (right padding only).
Quantization: ``quantize_dynamic(QInt8)`` of every supported operator (MatMul and the fused Attention), or ``mm``
for MatMul only (the fused Attention stays fp32). Session settings: ``+daz`` flushes denormals to zero
(``session.set_denormal_as_zero``); ``-skipfusion`` turns off the session's own SkipLayerNormFusion. ``clamp``:
each Softmax input raised to at least its row max - 80 (sagefinetune's ``runtime.onnx_graph.clamp_softmax``), so that masked scores
do not make exp run on denormals. ``first token``/``every token``: whether the last layer works for the one token the
classifier reads only (sagefinetune's ``runtime.onnx_graph.prune_to_first_token``) or for every token.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import random
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sagefinetune.runtime.export import quantize_int8
from sagefinetune.runtime.onnx_graph import clamp_softmax, edit_for_cpu

NAMES = ("input_ids", "attention_mask", "token_type_ids")
FUSED = ("EmbedLayerNormalization", "QEmbedLayerNormalization", "Attention", "QAttention", "SkipLayerNormalization", "BiasGelu", "FastGelu",
         "DynamicQuantizeMatMul", "MatMulInteger", "MatMul")


@dataclass(frozen=True)
class Build:
    exporter: str  # "dynamo" or "script"
    attention: str  # "sdpa" or "eager"
    fuse: bool = True
    skip_ln: bool = True  # fuse residual add + LayerNorm into SkipLayerNormalization
    raw_mask: bool = True  # fused Attention takes the 2D mask (any padding side), not sequence lengths
    quantize: str | None = "all"  # "all", "mm" (MatMul only) or None (fp32)
    clamp: bool = False  # Softmax inputs clamped to (row max - 80): no exp underflow into denormals
    opset: int | None = None  # 23: an Attention node per layer that splits its heads (onnx_graph.edit_for_cpu)
    first_token: bool = True  # at opset 23: the last layer works for the token the classifier reads only


@dataclass(frozen=True)
class Variant:
    name: str
    build: Build
    daz: bool = False  # session.set_denormal_as_zero (flush-to-zero, denormals-are-zero)
    no_skip_fusion: bool = False  # the session does not fuse Add + LayerNormalization into SkipLayerNormalization


BEFORE, MAIN = Build("dynamo", "sdpa", fuse=False), Build("dynamo", "sdpa")
SCRIPT, SCRIPT_NOSKIP = Build("script", "eager"), Build("script", "eager", skip_ln=False)
CLAMP = Build("dynamo", "sdpa", fuse=False, clamp=True)  # what sagefinetune exported before opset 23
OPSET23 = Build("dynamo", "sdpa", fuse=False, opset=23)  # what sagefinetune exports now
EVERY_TOKEN = Build("dynamo", "sdpa", fuse=False, opset=23, first_token=False)  # the opset 23 export before that edit
VARIANTS = [
    Variant("dynamo unfused (before fusion)", BEFORE),
    Variant("dynamo SkipLN+BiasGelu (main)", MAIN),
    Variant("dynamo eager SkipLN+BiasGelu", Build("dynamo", "eager")),
    Variant("script sdpa fused", Build("script", "sdpa")),
    Variant("script eager fused (Attention)", SCRIPT),
    Variant("script eager fused, seqlen mask", Build("script", "eager", raw_mask=False)),
    Variant("script eager fused, Attention fp32", Build("script", "eager", quantize="mm")),
    Variant("script eager fused +daz", SCRIPT, daz=True),
    Variant("script fused-noskip +daz -skipfusion", SCRIPT_NOSKIP, daz=True, no_skip_fusion=True),
    Variant("dynamo unfused +daz", BEFORE, daz=True),
    Variant("dynamo unfused -skipfusion", BEFORE, no_skip_fusion=True),
    Variant("dynamo unfused +daz -skipfusion", BEFORE, daz=True, no_skip_fusion=True),
    Variant("dynamo clamp -skipfusion (branch)", CLAMP, no_skip_fusion=True),
    Variant("dynamo opset 23, heads folded, every token -skipfusion", EVERY_TOKEN, no_skip_fusion=True),
    Variant("dynamo opset 23, heads folded, first token -skipfusion (now)", OPSET23, no_skip_fusion=True),
    Variant("fp32 dynamo unfused (main)", Build("dynamo", "sdpa", fuse=False, quantize=None)),
    Variant("fp32 dynamo clamp -skipfusion (branch)", Build("dynamo", "sdpa", fuse=False, clamp=True, quantize=None),
            no_skip_fusion=True),
]


@contextlib.contextmanager
def quiet():
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def load_model(folder: Path, attention: str) -> Any:
    from transformers import AutoModelForSequenceClassification

    with quiet():
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True,
                                                                   attn_implementation=attention)
    return model.eval()


def export(model: Any, sample: dict[str, np.ndarray], exporter: str, out: Path, opset: int | None = None,
           first_token: bool = True) -> None:
    import onnx
    import torch

    names = [n for n in NAMES if n in sample]
    tensors = {n: torch.from_numpy(sample[n]) for n in names}
    with torch.no_grad(), quiet():
        if exporter == "dynamo":
            batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
            program = torch.onnx.export(model, (), kwargs=tensors, dynamo=True, verbose=False,
                                        output_names=["logits"], opset_version=opset,
                                        dynamic_shapes={n: {0: batch, 1: sequence} for n in names})
            program.save(str(out))
            if opset:
                edit_for_cpu(out, first_token=first_token)  # reads the recorded shapes, then drops them
            else:
                graph = onnx.load(str(out))
                del graph.graph.value_info[:]
                onnx.save(graph, str(out))
        else:
            torch.onnx.export(model, (), str(out), kwargs=tensors, dynamo=False, input_names=names,
                              output_names=["logits"], opset_version=17,
                              dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names})


def fuse(path: Path, config: Any, build: Build) -> None:
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.use_raw_attention_mask(build.raw_mask)
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = build.skip_ln
    with quiet():
        model = optimizer.optimize_model(str(path), model_type="bert", opt_level=1, optimization_options=options,
                                         num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
        model.save_model_to_file(str(path))


def quantize(fp32: Path, out: Path, which: str, opset: int | None = None) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if opset:  # as sagefinetune quantizes its own export (an ONNX Attention must not be taken for the contrib one)
        return quantize_int8(fp32, out)
    with quiet():
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"] if which == "mm" else None,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def build(variant: Build, folder: Path, sample: dict[str, np.ndarray], work: Path) -> Path:
    model = load_model(folder, variant.attention)
    fp32 = work / "fp32.onnx"
    export(model, sample, variant.exporter, fp32, variant.opset, variant.first_token)
    if variant.fuse:
        fuse(fp32, model.config, variant)
    if variant.clamp:
        clamp_softmax(fp32)
    if not variant.quantize:
        return fp32
    out = work / "int8.onnx"
    quantize(fp32, out, variant.quantize, variant.opset)
    return out


def op_counts(path: Path) -> str:
    import onnx

    ops = collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    short = {"EmbedLayerNormalization": "EmbLN", "SkipLayerNormalization": "SkipLN", "QEmbedLayerNormalization": "QEmbLN", "DynamicQuantizeMatMul": "DQMatMul",
             "MatMulInteger": "MMInt"}
    return " ".join(f"{short.get(op, op)}:{ops[op]}" for op in FUSED if ops[op])


def session(path: Path, threads: int, variant: Variant | None = None) -> Any:
    """As sagefinetune.runtime.loading.OnnxRuntime builds it, plus the variant's session settings. ONNX Runtime sets
    flush-to-zero on the calling thread once per process (the first session's setting), and on each session's own
    pool threads: :func:`timing` sets the calling thread's mode before each variant runs (torch.set_flush_denormal)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if variant is not None and variant.daz:
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    disabled = ["SkipLayerNormFusion"] if variant is not None and variant.no_skip_fusion else None
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)


def batches(tokenizer: Any, texts: list[str], size: int, max_length: int) -> list[dict[str, np.ndarray]]:
    """Padded batches of ``size`` texts, longest first (as the runtime groups them)."""
    order = sorted(texts, key=lambda t: -len(tokenizer(t)["input_ids"]))
    out = []
    for start in range(0, len(order), size):
        enc = tokenizer(order[start:start + size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="np")
        out.append({k: v.astype(np.int64) for k, v in enc.items() if k in NAMES})
    return out


def feed(sess: Any, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: batch[i.name] for i in sess.get_inputs()}


def accuracy(path: Path, variant: Variant, reference: list[np.ndarray], checks: list[dict[str, np.ndarray]]) -> tuple[float, float]:
    import torch

    sess = session(path, 2, variant)
    torch.set_flush_denormal(variant.daz)
    logits = [sess.run(None, feed(sess, b))[0] for b in checks]
    diff = max(float(np.abs(a - r).max()) for a, r in zip(logits, reference))
    same = np.concatenate([a.argmax(-1) == r.argmax(-1) for a, r in zip(logits, reference)])
    return diff, float(same.mean())


def timing(variants: dict[str, tuple[Variant, Path]], timed: dict[int, list[dict[str, np.ndarray]]], rounds: int,
           threads: int) -> dict[tuple[str, int], float]:
    """Median ms per batch, per (variant, batch size): every variant in turn, each round in a new order."""
    import torch

    sessions = {name: session(path, threads, variant) for name, (variant, path) in variants.items()}
    samples: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    for name, sess in sessions.items():  # warm-up
        torch.set_flush_denormal(variants[name][0].daz)
        for group in timed.values():
            for b in group:
                sess.run(None, feed(sess, b))
    rng = random.Random(0)
    for _ in range(rounds):
        names = list(sessions)
        rng.shuffle(names)
        for name in names:
            sess = sessions[name]
            torch.set_flush_denormal(variants[name][0].daz)
            for size, group in timed.items():
                started = time.perf_counter()
                for b in group:
                    sess.run(None, feed(sess, b))
                samples[(name, size)].append(1000 * (time.perf_counter() - started) / len(group))
    return {key: statistics.median(values) for key, values in samples.items()}


def read_texts(test: Path, rows: int) -> list[str]:
    import pyarrow.parquet as pq

    return [t or "" for t in pq.read_table(test).column("text").to_pylist()][:rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a trained model folder (a run's model/)")
    parser.add_argument("--test", type=Path, help="a Parquet file with a 'text' column (default: the run's test split)")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--timed", type=int, default=6, help="batches per batch size timed each round")
    parser.add_argument("--only", help="comma-separated substrings: build only the variants whose name holds one")
    args = parser.parse_args()
    import torch
    from transformers import AutoTokenizer

    test = args.test or next((args.model.parent / "input" / "data" / "test").glob("*.parquet"))
    texts = read_texts(test, args.rows)
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    max_length = 128
    checks = batches(tokenizer, texts, 16, max_length)
    reference_model = load_model(args.model, "sdpa")
    with torch.inference_mode():
        reference = [reference_model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.numpy() for b in checks]
    lengths = [int(b["attention_mask"].sum(1).mean()) for b in checks]
    print(f"{len(texts)} test texts from {test}: mean {statistics.mean(lengths):.1f} tokens per text "
          f"(after padding: {statistics.mean(b['input_ids'].shape[1] for b in checks):.1f}); "
          f"onnxruntime {__import__('onnxruntime').__version__}, torch {torch.__version__}")
    rng = random.Random(1)  # timed batches: texts drawn at random, so padding and lengths are typical
    timed = {size: batches(tokenizer, rng.sample(texts, size * args.timed), size, max_length)[:args.timed]
             for size in (1, 8, 16)}
    sample = {k: v.astype(np.int64) for k, v in tokenizer(  # as sagefinetune.runtime.export samples: padding
        ["a short text", "a somewhat longer text, so that the batch needs padding"], padding=True,
        return_tensors="np").items() if k in NAMES}
    variants = [v for v in VARIANTS if not args.only or any(s in v.name for s in args.only.split(","))]
    work = Path(tempfile.mkdtemp(prefix="onnx-fusion-"))
    paths, built, rows = {}, {}, {}
    for i, variant in enumerate(variants):
        if variant.build not in built:
            folder = work / str(i)
            folder.mkdir()
            try:
                built[variant.build] = build(variant.build, args.model, sample, folder)
            except Exception as exc:  # a variant that cannot be built is reported, not fatal
                print(f"{variant.name}: FAILED to build: {type(exc).__name__}: {str(exc)[:300]}")
                continue
        path = built[variant.build]
        paths[variant.name] = (variant, path)
        diff, same = accuracy(path, variant, reference, checks)
        rows[variant.name] = (op_counts(path), diff, same, path.stat().st_size / 1e6)
        print(f"built {variant.name}: {rows[variant.name][0]}", flush=True)
    torch.set_flush_denormal(False)
    times = {threads: timing(paths, timed, args.rounds, threads) for threads in (1, 2)}
    print(f"\nms per batch, median of {args.rounds} rounds x {args.timed} batches; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    head = f"{'variant':42} {'1t b1':>6} {'1t b8':>6} {'1t b16':>6} {'2t b1':>6} {'2t b8':>6} {'2t b16':>6} " \
           f"{'maxdiff':>8} {'argmax':>7} {'MB':>5}  ops"
    print(head)
    for name, (ops, diff, same, size) in rows.items():
        cells = " ".join(f"{times[t][(name, s)]:6.2f}" for t in (1, 2) for s in (1, 8, 16))
        print(f"{name:42} {cells} {diff:8.4f} {100 * same:6.1f}% {size:5.1f}  {ops}")


if __name__ == "__main__":
    main()
