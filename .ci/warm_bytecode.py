"""Byte-compile what the tests import, once, into the venv (CI only).

CI installs the tests' venv and the main job's without byte-compiling (pip compiles every module of every package it
installs: about 90 s of CPU for each venv, most of it for modules nothing imports) and then imports here what the test
processes and the quickstart import (a module a venv lacks is skipped), with bytecode writing on, so that each of those
modules is compiled once. Under PYTHONDONTWRITEBYTECODE=1 (set on the CI machine) a module without a .pyc is compiled
again in every process that imports it; the few this list misses cost that, the rest is read from the .pyc written
here. Our own package is left alone: its folders are copied into model and source folders.
"""

import importlib
import os
import sys

MODULES = (
    # the entry point's training and the runtime: transformers' Trainer pulls torch, accelerate, datasets, safetensors
    "transformers", "transformers.trainer", "transformers.models.bert.modeling_bert", "transformers.pipelines",
    "tokenizers", "datasets", "evaluate", "sklearn.metrics", "accelerate", "torch.distributed.run",
    # ONNX export and serving
    "torch.onnx", "torch.export", "torch._dynamo", "onnx", "onnx_ir", "onnxscript", "onnxruntime",
    "onnxruntime.quantization", "onnxruntime.transformers.optimizer", "starlette.applications", "uvicorn",
    # SageMaker, AWS and moto, the Hub, tracking, tuning, plots
    "sagemaker.core", "sagemaker.train", "sagemaker.mlops", "boto3", "botocore", "moto", "moto.server",
    "huggingface_hub", "mlflow", "mlflow.tracking", "optuna", "matplotlib.pyplot", "pandas", "pyarrow.parquet",
    # the test runner
    "pytest", "xdist", "filelock",
)


def main() -> None:
    sys.dont_write_bytecode = False
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # sagemaker.mlops asks for one at import
    missed = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an optional piece missing only means it is compiled where it is used
            missed.append(f"{name} ({type(exc).__name__})")
    print(f"byte-compiled what {len(MODULES) - len(missed)} of {len(MODULES)} imports load"
          + (f"; not importable: {', '.join(missed)}" if missed else ""))


if __name__ == "__main__":
    main()
