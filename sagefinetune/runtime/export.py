"""Export a trained model to ONNX for CPU serving (optionally with int8 weights), checked against the PyTorch model.

    exported = run.export("onnx", quantize="int8")      # or export(model_dir, ...) for any model folder
    exported.accuracy, exported.reference_accuracy     # on the run's test split, ONNX vs PyTorch
    sft.Predictor(exported.path).predict(["..."])        # the same JSON as the PyTorch model's

How: ``torch.onnx.export(dynamo=True)`` writes the graph at opset 23 (dynamic batch and sequence axes), so that
scaled dot-product attention becomes one ONNX ``Attention`` node, which then splits its heads itself; the last layer
works for the first token only where the classifier reads nothing else, and any other Softmax is clamped against slow
denormals (:mod:`~sagefinetune.runtime.onnx_graph`); for int8, ``quantize_dynamic``
stores every MatMul's weights as int8 (activations quantized on the fly: no calibration data). ONNX Runtime's
transformer fusions are left out: its SkipLayerNormalization is slower than the Add and LayerNorm it fuses
(``benchmarks/onnx_fusion.py``). Serving the export takes onnxruntime 1.23 or later (opset 23); a model the exporter
cannot write at opset 23 is exported at the exporter's default opset instead. Not ``optimum``: it requires
``transformers<4.58``. The folder holds ``model.onnx``, the tokenizer, ``config.json`` (labels), ``sagefinetune.json`` (max length, threshold), ``export.json`` (the check).

The check: both models score the test rows (the run's test split, or ``test_data=``) through one tokenisation
(:mod:`sagefinetune.runtime.loading`); the export raises :class:`~sagefinetune.ExportError` and leaves no folder when its
accuracy (micro F1 for multi-label) is more than ``max_accuracy_drop`` below the PyTorch model's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.console import say
from sagefinetune.core.deps import require
from sagefinetune.entrypoint.contract import SETTINGS_FILE
from sagefinetune.errors import ConfigError, ExportError
from sagefinetune.runtime.loading import ONNX_FILE, OnnxRuntime, Runtime, TorchRuntime
from sagefinetune.runtime.onnx_graph import SOFTMAX_FLOOR, edit_for_cpu

if TYPE_CHECKING:
    from sagefinetune.run import TrainingRun
    from sagefinetune.runtime.predict import Predictor

__all__ = ["export", "ExportReport", "FORMATS", "QUANTIZATIONS"]

FORMATS = ("onnx",)
QUANTIZATIONS = (None, "int8")
OPSET = 23  # the first with an Attention operator: onnxruntime>=1.23 runs it
#: The export's graph. 2: opset 23, attention heads split inside the Attention node. 3: the last layer works for the
#: first token only where the classifier reads nothing else. The serving check exports a folder's int8 graph again
#: when it is from an older revision (it serves slower).
REVISION = 3
REPORT_FILE = "export.json"
DATA_PATTERNS = ("*.parquet", "*.jsonl", "*.json", "*.csv")


@dataclass(frozen=True)
class ExportReport:
    """An exported model folder and the accuracy check it passed (:class:`sagefinetune.ExportedModel` adds ``deploy()``).

    Attributes:
        path: the folder (``model.onnx``, tokenizer, config, settings, ``export.json``).
        quantize: ``"int8"`` or None (fp32).
        metric: ``"accuracy"`` (``"f1_micro"`` for multi-label models).
        accuracy: the exported model's score on the test rows.
        reference_accuracy: the PyTorch model's score on the same rows.
        agreement: the share of rows where both models predict the same label(s).
        rows: how many test rows were scored.
        size_bytes: the size of ``model.onnx``.
        seconds: how long the export and the check took.
    """

    path: Path
    format: str
    quantize: str | None
    metric: str
    accuracy: float
    reference_accuracy: float
    agreement: float
    rows: int
    size_bytes: int
    seconds: float

    @property
    def drop(self) -> float:
        """How much lower the exported model scores than the PyTorch model (negative: higher)."""
        return self.reference_accuracy - self.accuracy

    def predictor(self, *, batch_size: int = 32, threads: int | None = None) -> Predictor:
        """A :class:`~sagefinetune.Predictor` on the exported model (ONNX Runtime, CPU)."""
        from sagefinetune.runtime.predict import Predictor

        return Predictor(self.path, batch_size=batch_size, threads=threads)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "drop": self.drop}

    def __str__(self) -> str:
        kind = f"ONNX {self.quantize or 'fp32'}"
        return (f"{kind} model in {self.path} ({self.size_bytes / 1e6:.1f} MB): {self.metric} {self.accuracy:.4f} vs "
                f"PyTorch {self.reference_accuracy:.4f} on {self.rows} test rows (drop {100 * self.drop:+.2f} points, "
                f"{100 * self.agreement:.1f}% same predictions)")


def export(source: TrainingRun | str | Path, format: str = "onnx", *, quantize: str | None = None,
           path: str | Path | None = None, test_data: str | Path | None = None,
           max_accuracy_drop: float = 0.01) -> ExportReport:
    """Export a run's model (or a model folder) to ONNX and check its accuracy against the PyTorch model.

    Args:
        source: a :class:`~sagefinetune.TrainingRun` or a model folder (a run's ``model_dir``).
        format: ``"onnx"``.
        quantize: ``"int8"`` for int8 weights (about 4x smaller, faster on CPU), or None for fp32.
        path: the folder to write (replaced if it exists). Default: beside the model folder, ``onnx`` or
            ``onnx-int8`` (a local run: ``<run_dir>/onnx-int8``).
        test_data: the rows to check on: a Parquet, JSON Lines or CSV file (or a folder of them) with ``text``
            (and ``text_pair``) and ``label`` columns, labels as class names or ids. Default: the run's test split
            (validation if it has none), as written into ``<run_dir>/input/data``.
        max_accuracy_drop: the largest drop in accuracy allowed, as a fraction (0.01: one point).

    Raises:
        ExportError: the exported model scores more than ``max_accuracy_drop`` below the PyTorch model.

    Example:
        >>> exported = export(run, "onnx", quantize="int8")  # doctest: +SKIP
        >>> print(exported)  # doctest: +SKIP
        ONNX int8 model in sft-runs/demo/onnx-int8 (23.1 MB): accuracy 0.8120 vs PyTorch 0.8140 on 500 test rows ...
    """
    check_arguments(format, quantize, max_accuracy_drop)
    model_dir = _model_dir(source)
    rows = test_rows_file(source, model_dir, test_data)
    target = Path(path) if path is not None else model_dir.parent / ("onnx-int8" if quantize else "onnx")
    if target.resolve() == model_dir.resolve():
        raise ConfigError(f"path={str(path)!r} is the model folder itself; the export would overwrite it. "
                          "Fix: export(..., path='model-onnx') or leave path out.")
    for module in ("onnx", "onnxruntime", "onnxscript"):
        require(module, "export to ONNX")
    started = time.perf_counter()
    reference = TorchRuntime(model_dir, precision="fp32")  # the export computes in fp32: compare like with like
    items, labels = read_rows(rows, reference)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write_folder(reference, staging, quantize)
        exported_rt = OnnxRuntime(staging)
        result = compare(reference, exported_rt, items, labels)
        size = (staging / ONNX_FILE).stat().st_size
        report = ExportReport(path=target, format=format, quantize=quantize, size_bytes=size,
                               seconds=time.perf_counter() - started, **result)
        check_drop(report, max_accuracy_drop)
        (staging / REPORT_FILE).write_text(json.dumps({**report.to_dict(), "limit": max_accuracy_drop}, indent=2))
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def check_arguments(format: Any, quantize: Any, max_accuracy_drop: Any) -> None:
    """Builder-style checks, before anything is loaded."""
    if format not in FORMATS:
        raise ConfigError(f"export format {format!r} is not supported. Fix: export('onnx').")
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize={quantize!r} is not supported. Fix: quantize='int8' (int8 weights) or "
                          "quantize=None (fp32).")
    if isinstance(max_accuracy_drop, bool) or not isinstance(max_accuracy_drop, (int, float)) or \
            not 0 <= max_accuracy_drop <= 1:
        raise ConfigError(f"max_accuracy_drop={max_accuracy_drop!r} must be a fraction in [0, 1] (0.01 is one "
                          "point of accuracy). Fix: max_accuracy_drop=0.01.")


def check_drop(report: ExportReport, limit: float) -> None:
    """Raise :class:`ExportError` when the exported model lost more than ``limit`` of its accuracy."""
    if report.drop <= limit + 1e-12:
        return
    kind = f"ONNX {report.quantize or 'fp32'}"
    fix = ("export without int8 weights (quantize=None), or allow more with max_accuracy_drop="
           f"{report.drop + 0.005:.3f}" if report.quantize else
           f"check the model; allow more with max_accuracy_drop={report.drop + 0.005:.3f}")
    raise ExportError(
        f"the {kind} export scores {report.metric} {report.accuracy:.4f} on {report.rows} test rows, "
        f"{100 * report.drop:.2f} points below the PyTorch model's {report.reference_accuracy:.4f}; the limit is "
        f"{100 * limit:.2f} points (max_accuracy_drop={limit}). Nothing was written. Fix: {fix}.",
        metric=report.metric, reference=report.reference_accuracy, exported=report.accuracy, limit=limit,
        rows=report.rows)


# ---- writing the folder -----------------------------------------------------------------------------------------
def write_folder(reference: TorchRuntime, folder: Path, quantize: str | None) -> None:
    """model.onnx (fp32 or int8), tokenizer, config and settings into ``folder``."""
    import torch

    folder.mkdir(parents=True)
    fp32 = folder / ("model-fp32.onnx" if quantize else ONNX_FILE)
    edits = export_graph(reference.model, reference.encode(_sample(reference.pairs)), fp32)
    if quantize == "int8":
        quantize_int8(fp32, folder / ONNX_FILE)
        fp32.unlink()
    reference.tokenizer.save_pretrained(folder)
    reference.model.config.save_pretrained(folder)
    settings = {**reference.settings, "onnx": {"quantize": quantize, "exporter": "torch.onnx.export(dynamo=True)",
                                               "revision": REVISION, "torch": torch.__version__,
                                               "softmax_floor": SOFTMAX_FLOOR, **edits}}
    (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))


def export_graph(model: Any, sample: dict[str, Any], out: Path) -> dict[str, int]:
    """The model's forward pass as ONNX, with dynamic batch and sequence axes; logits out; at opset 23, or at the
    exporter's default opset where it cannot write the model at 23; edited for the CPU (the opset and what
    :func:`~sagefinetune.runtime.onnx_graph.edit_for_cpu` did are returned)."""
    import inspect

    import torch

    signature = list(inspect.signature(model.forward).parameters)
    names = sorted(sample, key=signature.index)  # the order forward() takes them
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    options: dict[str, Any] = {"kwargs": {n: torch.from_numpy(sample[n]) for n in names}, "dynamo": True,
                               "verbose": False, "output_names": ["logits"],
                               "dynamic_shapes": {n: {0: batch, 1: sequence} for n in names}}
    model.eval()
    with torch.no_grad(), _quiet("torch.onnx"):
        try:
            program = torch.onnx.export(model, (), opset_version=OPSET, **options)
        except Exception as exc:  # noqa: BLE001 - exported again below, at the exporter's default opset
            say(f"the ONNX exporter could not write {type(model).__name__} at opset {OPSET} ({type(exc).__name__}: "
                f"{str(exc)[:200]}); exporting it at the exporter's default opset, without the Attention operator")
            program = torch.onnx.export(model, (), **options)
    assert program is not None
    program.save(str(out))
    return edit_for_cpu(out)


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The exporter's and quantizer's chatter (deprecations, optional torchvision ops, hints) is not the user's concern."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantization: MatMul weights stored as int8, activations quantized per batch at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet("", "torch.onnx"):  # onnxruntime.quantization logs its hints on the root logger
        # MatMul and Gather (the embeddings) only: the quantizer takes an ONNX Attention for onnxruntime's own
        # Attention operator, and writes a QAttention that cannot load
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _sample(pairs: bool) -> list[Any]:
    """Two inputs of different lengths: the exporter sees padding and a batch larger than one."""
    texts = ["a short text", "a somewhat longer text, so that the batch needs padding"]
    return [(t, "and a second text") for t in texts] if pairs else texts


# ---- the accuracy check -------------------------------------------------------------------------------------------
def compare(reference: Runtime, exported: Runtime, items: list[Any], labels: Any) -> dict[str, Any]:
    """Both runtimes' scores on the same rows: the metric, each model's value and how often they agree."""
    ref = _predicted(reference, reference.probabilities(items))
    out = _predicted(exported, exported.probabilities(items))
    return {"metric": metric_of(reference), "reference_accuracy": score(ref, labels, reference.multi_label),
            "accuracy": score(out, labels, reference.multi_label), "rows": len(items),
            "agreement": float((ref == out).all(axis=-1).mean() if reference.multi_label else (ref == out).mean())}


def accuracy_of(runtime: Runtime, items: list[Any], labels: Any) -> float:
    """One runtime's :func:`metric_of` on the rows (see :func:`score`)."""
    return score(_predicted(runtime, runtime.probabilities(items)), labels, runtime.multi_label)


def metric_of(runtime: Runtime) -> str:
    """What :func:`score` computes for the runtime's model: ``"accuracy"``, or ``"f1_micro"`` for multi-label."""
    return "f1_micro" if runtime.multi_label else "accuracy"


def _predicted(runtime: Runtime, probs: Any) -> Any:
    return (probs >= runtime.threshold).astype(int) if runtime.multi_label else probs.argmax(-1)


def score(predicted: Any, labels: Any, multi: bool) -> float:
    """Accuracy of class ids, or micro F1 of multi-hot rows."""
    if not multi:
        return float((predicted == labels).mean())
    true_pos = float((predicted & labels).sum())
    denominator = float(predicted.sum() + labels.sum())
    return 2 * true_pos / denominator if denominator else 1.0


def read_rows(file: Path, runtime: Runtime) -> tuple[list[Any], Any]:
    """Inputs and labels (class ids, or multi-hot rows) from a channel file; labels may be names or ids."""
    import numpy as np

    table = _read_table(file)
    columns = set(table.column_names)
    missing = [c for c in ("text", "label", *(("text_pair",) if runtime.pairs else ())) if c not in columns]
    if missing:
        raise ConfigError(f"test data {file} has no column(s) {missing}; it has {sorted(columns)}. Fix: a file with "
                          "'text' and 'label' columns (and 'text_pair' for a model trained on pairs).")
    texts = [t or "" for t in table.column("text").to_pylist()]
    items: list[Any] = list(zip(texts, table.column("text_pair").to_pylist())) if runtime.pairs else texts
    ids = {name: i for i, name in enumerate(runtime.labels)}
    raw = table.column("label").to_pylist()
    if not raw:
        raise ConfigError(f"test data {file} holds no rows. Fix: pass test_data= with rows to check the export on.")
    if runtime.multi_label:
        hot = np.zeros((len(raw), len(runtime.labels)), dtype=int)
        for row, values in enumerate(raw):
            for value in values or []:
                hot[row, _label_id(value, ids, file)] = 1
        return items, hot
    return items, np.array([_label_id(v, ids, file) for v in raw])


def _label_id(value: Any, ids: dict[str, int], file: Path) -> int:
    if isinstance(value, str) and value in ids:
        return ids[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(ids):
        return value
    raise ConfigError(f"test data {file} has label {value!r}, which is neither a class name of the model "
                      f"({sorted(ids)}) nor a class id 0..{len(ids) - 1}. Fix: label the rows with the model's classes.")


def _read_table(file: Path) -> Any:
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    if file.suffix == ".parquet":
        return pq.read_table(file)
    if file.suffix == ".csv":
        return pcsv.read_csv(file)
    return pjson.read_json(file)


def _model_dir(source: Any) -> Path:
    from sagefinetune.runtime.predict import check_model_dir

    folder = source if isinstance(source, (str, Path)) else getattr(source, "model_dir", source)  # a run
    if not isinstance(folder, (str, Path)):
        raise ConfigError(f"export needs a TrainingRun or a model folder; got {type(source).__name__}. "
                          "Fix: run.export('onnx') or export('sft-runs/demo/model').")
    folder = check_model_dir(folder)
    if (folder / ONNX_FILE).is_file():
        raise ConfigError(f"{folder} is already an ONNX export. Fix: export from the PyTorch model folder "
                          "(run.model_dir).")
    return folder


def test_rows_file(source: Any, model_dir: Path, test_data: str | Path | None) -> Path:
    """The file of rows to check on: ``test_data``, or the run's test (else validation) channel."""
    if test_data is not None:
        found = _data_file(Path(test_data))
        if found is None:
            raise ConfigError(f"test_data={str(test_data)!r} is not a Parquet, JSON Lines or CSV file, nor a folder "
                              "holding one. Fix: test_data='test.parquet'.")
        return found
    run_dir = getattr(source, "run_dir", None) or model_dir.parent
    for split in ("test", "validation"):
        found = _data_file(Path(run_dir) / "input" / "data" / split)
        if found is not None:
            return found
    raise ConfigError(f"no test rows to check the export on: {Path(run_dir) / 'input' / 'data'} holds no test or "
                      "validation split (a SageMaker run's data stays in S3). Fix: export(..., test_data='test.parquet')"
                      " with 'text' and 'label' columns.")


def _data_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix in (".parquet", ".jsonl", ".json", ".csv") else None
    if path.is_dir():
        for pattern in DATA_PATTERNS:
            files = sorted(path.rglob(pattern))
            if files:
                return files[0]
    return None
