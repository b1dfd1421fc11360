"""The check at deploy: which runtime serves a model folder by default, chosen on the run's test split and recorded.

    record = check_serving(run.model_dir)     # cached in model_dir/serving.json; None: no test split to check on
    record["runtime"], record["precision"], record["accuracy"], record["rows"], record["why"]

The int8 ONNX export (``run.export("onnx", quantize="int8")``, written inside the model folder as ``onnx-int8/`` so
that it travels in ``model.tar.gz``) serves when its accuracy on the test split is within one point of PyTorch fp32's;
otherwise PyTorch in bf16 when this CPU computes bf16 natively and bf16 also scores within one point; otherwise
PyTorch in fp32 (:func:`sagefinetune.entrypoint.serving_choice.decide`). The record (``serving.json``) holds the
choice, every accuracy, the number of rows, the CPU, when it was checked and a hash of the weights: the check runs
again only when the weights changed. When it chose the int8 export it also writes ``code/requirements.txt`` naming
onnxruntime, which SageMaker's Hugging Face inference toolkit pip-installs at model load.

A folder with no test split beside it (a Hub model, a SageMaker run's artifact whose data stays in S3) gets no record
and keeps what was served before: PyTorch, ``precision="auto"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sagefinetune.core.console import say
from sagefinetune.core.deps import missing
from sagefinetune.entrypoint import inference as handler
from sagefinetune.entrypoint.serving_choice import BF16, INT8, INT8_DIR, MAX_DROP, RECORD_FILE, REFERENCE, decide
from sagefinetune.errors import ConfigError
from sagefinetune.runtime.export import REVISION, accuracy_of, export, metric_of, read_rows, test_rows_file
from sagefinetune.runtime.loading import ONNX_FILE, TorchRuntime

__all__ = ["check_serving", "weights_hash", "sync_requirements", "REQUIREMENT"]

REQUIREMENT = "onnxruntime>=1.23  # sagefinetune: serving.json serves the int8 ONNX export (onnx-int8/)\n"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def check_serving(model_dir: str | Path, *, test_data: str | Path | None = None, refresh: bool = False,
                  limit: float = MAX_DROP) -> dict[str, Any] | None:
    """Choose what serves ``model_dir`` by default and record it in ``serving.json``; the record, or None when there
    is no test split to check on (nothing is written then).

    Args:
        test_data: rows to check on (see :func:`~sagefinetune.runtime.export.export`); default: the run's test split
            (validation when it has none) in ``<run_dir>/input/data``.
        refresh: check again even if the record matches the weights.
        limit: the largest drop in accuracy from PyTorch fp32 allowed (0.01: one point).
    """
    folder = Path(model_dir)
    if (folder / ONNX_FILE).is_file():
        return None  # an export serves as itself
    digest = weights_hash(folder)
    record = _read(folder)
    if record and not refresh and record.get("model_sha256") == digest and record.get("limit") == limit and \
            _export_is_current(folder, record):
        sync_requirements(folder, record.get("runtime") == "onnx")
        return record
    try:
        rows = test_rows_file(None, folder, test_data)
    except ConfigError:
        return None
    say(f"choosing what serves {folder}: scoring {rows.parent.name} rows with PyTorch fp32, the int8 ONNX export and "
        "bf16 (once; recorded in serving.json)")
    accuracy, metric, count = _accuracies(folder, rows)
    runtime, precision, why = decide(accuracy, limit, metric)
    record = {"runtime": runtime, "precision": precision, "onnx_dir": INT8_DIR if runtime == "onnx" else None,
              "metric": metric, "accuracy": accuracy, "rows": count, "limit": limit,
              "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": _cpu_name(),
              "test_data": str(rows), "model_sha256": digest, "why": why}
    if runtime != "onnx":
        shutil.rmtree(folder / INT8_DIR, ignore_errors=True)  # it would travel in model.tar.gz for nothing
    sync_requirements(folder, runtime == "onnx")
    tmp = folder / f".{RECORD_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, folder / RECORD_FILE)
    return record


def _export_is_current(folder: Path, record: dict[str, Any]) -> bool:
    """Whether the int8 export the record chose is this version's graph (an older revision, e.g. one from before
    opset 23, is checked and exported again: it serves slower)."""
    if record.get("runtime") != "onnx":
        return True
    try:
        settings = json.loads((folder / INT8_DIR / handler.SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return False
    return bool(settings.get("onnx", {}).get("revision") == REVISION)


def _accuracies(folder: Path, rows: Path) -> tuple[dict[str, float | None], str, int]:
    """PyTorch fp32's, the int8 export's (None without the onnx extra) and bf16's (None on a CPU without native bf16)
    scores on the rows, and the metric and row count."""
    accuracy: dict[str, float | None] = {INT8: None, BF16: None}
    if not missing("onnx", "onnxruntime", "onnxscript"):  # the export scores PyTorch fp32 and itself
        report = export(folder, "onnx", quantize="int8", path=folder / INT8_DIR, test_data=rows, max_accuracy_drop=1.0)
        accuracy.update({REFERENCE: report.reference_accuracy, INT8: report.accuracy})
        metric, count = report.metric, report.rows
    else:
        reference = TorchRuntime(folder, precision="fp32")
        items, labels = read_rows(rows, reference)
        accuracy[REFERENCE], metric, count = accuracy_of(reference, items, labels), metric_of(reference), len(items)
    if handler.native_bf16("cpu"):
        bf16 = TorchRuntime(folder, precision="bf16")
        accuracy[BF16] = accuracy_of(bf16, *read_rows(rows, bf16))
    return accuracy, metric, count


def weights_hash(folder: Path) -> str:
    """sha256 of the model's weights file (the record is re-checked when it changes)."""
    h = hashlib.sha256()
    for name in WEIGHTS:
        path = folder / name
        if path.is_file():
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            break
    return h.hexdigest()


def sync_requirements(folder: Path, onnx: bool) -> None:
    """``code/requirements.txt`` names onnxruntime when the int8 export serves; our line goes when it no longer does
    (a file of the user's own is kept, with our line added or removed)."""
    path = folder / "code" / "requirements.txt"
    lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
    kept = [line for line in lines if line != REQUIREMENT]
    if onnx and not any(line.split("#")[0].strip().startswith("onnxruntime") for line in kept):
        kept.append(REQUIREMENT)
    if kept == lines:
        return
    if kept:
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(kept))
    else:
        path.unlink()


def _read(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
