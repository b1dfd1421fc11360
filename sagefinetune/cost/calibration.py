"""Fit the time model of :mod:`sagefinetune.cost.throughput` to measurements, and check it by leave-one-out.

Two fits, both with scipy, both reproducible (``tests/cost/test_estimate.py`` re-runs them and compares with the stored file):

1. **The 25 SageMaker runs of the AWS SageMaker Hugging Face benchmark** (https://github.com/aws-samples/amazon-sagemaker-huggingface-benchmark:
   distilbert-base-uncased on amazon_polarity, ml.p3 with 1 to 32 V100 GPUs) (``cost/sagemaker_hf_benchmark_results.csv``): the fixed overhead, the effective
   speed of a V100 in fp32, and the synchronisation cost per doubling of GPUs in a node and of nodes, by least squares
   on the logarithm of the training time.
2. **GPU and precision speeds**: the share of a step bound by memory bandwidth rather than arithmetic, fitted on
   NVIDIA's published BERT training throughputs (V100 fp32 / mixed precision, A100 tf32 / mixed precision), so that
   datasheet peaks and bandwidths carry the benchmark's V100 speed to the other GPUs of the instance table.

Run ``python -m sagefinetune.cost.calibration`` to rewrite ``cost/calibration.json``; ``--examples`` also rewrites the
token lengths of the bundled example datasets (needs the tokenizer and the example packages).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sagefinetune.cost.throughput import Calibration, Hardware, ModelSize, Workload, model_size, relative_speed, seconds

SEED_CSV = "sagemaker_hf_benchmark_results.csv"
SEED_SOURCE = ("the AWS SageMaker Hugging Face benchmark's 25 SageMaker runs (aws-samples/amazon-sagemaker-huggingface-"
               "benchmark: distilbert-base-uncased on amazon_polarity, ml.p3 / V100, 1-32 GPUs), MIT-0, shipped as "
               "sagefinetune/cost/" + SEED_CSV)
TRAIN_SHARE = 0.9  # the benchmark trained on 90% of each data size: 2.7 million samples in every run
SEED_TOKENS = 512  # static padding

#: NVIDIA DeepLearningExamples, PyTorch/LanguageModeling/BERT/README.md (pytorch:21.11 NGC container): training
#: throughput in sequences/s on one GPU, DGX-1 V100 32GB and DGX A100 80GB.
NVIDIA_BERT: dict[str, dict[tuple[str, str], float]] = {
    "BERT-large SQuAD fine-tuning": {("V100", "fp32"): 12, ("V100", "fp16"): 52, ("A100-80GB", "tf32"): 61.5,
                                     ("A100-80GB", "fp16"): 110.5},
    "BERT-large pre-training, 512 tokens": {("V100", "fp32"): 19, ("V100", "fp16"): 75, ("A100-80GB", "tf32"): 110,
                                            ("A100-80GB", "fp16"): 210},
    "BERT-large pre-training, 128 tokens": {("V100", "fp32"): 50, ("V100", "fp16"): 224, ("A100-80GB", "tf32"): 317,
                                            ("A100-80GB", "fp16"): 580},
}
NVIDIA_SOURCE = "NVIDIA DeepLearningExamples, PyTorch BERT README, training performance tables (pytorch:21.11 container)"


def seed_runs() -> list[dict[str, Any]]:
    """The benchmark's 25 runs as dicts with typed values."""
    text = resources.files("sagefinetune.cost").joinpath(SEED_CSV).read_text(encoding="utf-8")
    rows = []
    for raw in csv.DictReader(text.splitlines()):
        rows.append({
            "run": int(raw["run_id"]), "instance": raw["instance_type"], "gpus": int(raw["num_gpus"]),
            "nodes": int(raw["num_nodes"]), "batch_size": int(raw["per_device_train_batch_size"]),
            "learning_rate": float(raw["learning_rate"]), "epochs": float(raw["epochs"]),
            "dataset_size": int(raw["dataset_size"]), "seconds": float(raw["train_time"]),
            "billable_seconds": float(raw["billable_seconds"]), "price_per_hour": float(raw["hourly_price"]),
            "cost": float(raw["job_cost"]), "f1": float(raw["f1"]), "model": raw["automodel_name"],
        })
    return rows


def seed_prediction(run: dict[str, Any], cal: Calibration, model: ModelSize | None = None) -> float:
    """The model's training seconds for one of the benchmark's runs (the same function every estimate uses)."""
    work = Workload(train_rows=int(run["dataset_size"] * TRAIN_SHARE), epochs=run["epochs"],
                    batch_size=run["batch_size"], tokens_per_row=SEED_TOKENS)
    hw = Hardware("V100", "fp32", run["gpus"] // run["nodes"], run["nodes"])
    return seconds(work, hw, model or model_size(run["model"]), cal)


def _calibration(x: Sequence[float], memory_share: float = 0.0) -> Calibration:
    return Calibration(overhead_s=float(x[0]), seed_tflops=math.exp(float(x[1])), sync_node_s_per_gb=float(x[2]),
                       sync_nodes_s_per_gb=float(x[3]), memory_share=memory_share)


def fit_seed(runs: Sequence[dict[str, Any]]) -> Calibration:
    """Least squares on log(seconds): overhead in [0, 1 h], speed, two synchronisation costs >= 0."""
    import numpy as np
    from scipy.optimize import least_squares

    model = model_size(runs[0]["model"])
    observed = np.log([r["seconds"] for r in runs])

    def residuals(x: Any) -> Any:
        cal = _calibration(x)
        return np.log([seed_prediction(r, cal, model) for r in runs]) - observed

    x0 = [300.0, math.log(5.0), 0.1, 0.1]
    fit = least_squares(residuals, x0, bounds=([0.0, math.log(0.1), 0.0, 0.0], [3600.0, math.log(1000.0), 10.0, 10.0]),
                        x_scale=[100.0, 1.0, 0.1, 0.1])
    return _calibration(fit.x)


def fit_memory_share() -> tuple[float, list[dict[str, Any]]]:
    """The memory-bound share of a step, fitted on NVIDIA's published BERT throughputs; with each point's fit."""
    from scipy.optimize import minimize_scalar

    points = []
    for workload, speeds in NVIDIA_BERT.items():
        base = speeds[("V100", "fp32")]
        points += [(workload, gpu, precision, value / base) for (gpu, precision), value in speeds.items()
                   if (gpu, precision) != ("V100", "fp32")]

    def loss(m: float) -> float:
        return sum((math.log(relative_speed(g, p, m)) - math.log(r)) ** 2 for _, g, p, r in points)

    share = float(minimize_scalar(loss, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-8}).x)
    table = [{"workload": w, "gpu": g, "precision": p, "published": round(r, 4),
              "model": round(relative_speed(g, p, share), 4)} for w, g, p, r in points]
    return share, table


def leave_one_out(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run predicted by a fit on the other 24: time, and cost (billable = predicted seconds on demand)."""
    out = []
    for i, run in enumerate(runs):
        cal = fit_seed([r for j, r in enumerate(runs) if j != i])
        predicted = seed_prediction(run, cal)
        cost = predicted / 3600 * run["price_per_hour"] * run["nodes"]
        out.append({
            "run": run["run"], "instance": run["instance"], "gpus": run["gpus"], "nodes": run["nodes"],
            "batch_size": run["batch_size"], "dataset_size": run["dataset_size"],
            "seconds": run["seconds"], "predicted_seconds": round(predicted, 1),
            "time_error": round(predicted / run["seconds"] - 1, 4),
            "cost": round(run["cost"], 2), "predicted_cost": round(cost, 2), "cost_error": round(cost / run["cost"] - 1, 4),
        })
    return out


def seed_facts(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """What the benchmark measured at the default learning rate: 16 -> 32 GPUs, and F1 at 100k rows."""
    def mean(key: str, **where: Any) -> float:
        return statistics.fmean(r[key] for r in runs if all(r[k] == v for k, v in where.items()))

    lr = 5e-05
    return {
        "speedup_16_32": round(mean("seconds", gpus=16) / mean("seconds", gpus=32, learning_rate=lr), 3),
        "cost_ratio_16_32": round(mean("cost", gpus=32, learning_rate=lr) / mean("cost", gpus=16), 3),
        "f1_1gpu_100k": round(mean("f1", gpus=1, dataset_size=100_000), 4),
        "f1_32gpu_100k": round(mean("f1", gpus=32, dataset_size=100_000, learning_rate=lr), 4),
        "f1_32gpu_100k_scaled_lr": round(mean("f1", gpus=32, dataset_size=100_000, learning_rate=0.000283), 4),
        "scaled_lr": 0.000283, "base_lr": lr, "base_batch": 32.0, "max_global_batch": 1024.0,
    }


def derive() -> dict[str, Any]:
    """Every fitted number and check, as stored in ``cost/calibration.json``."""
    runs = seed_runs()
    cal = fit_seed(runs)
    share, points = fit_memory_share()
    loo = leave_one_out(runs)
    log_errors = [math.log(r["seconds"] / r["predicted_seconds"]) for r in loo]  # actual / predicted
    gpu_spread = max(abs(math.log(p["published"] / p["model"])) for p in points)
    time_errors = [abs(r["time_error"]) for r in loo]
    cost_errors = [abs(r["cost_error"]) for r in loo]
    return {
        "calibration": {**{k: round(v, 6) for k, v in cal.__dict__.items()}, "memory_share": round(share, 6)},
        "range": {"low": round(math.exp(min(log_errors)), 4), "high": round(math.exp(max(log_errors)), 4),
                  "extrapolated": round(math.exp(gpu_spread), 4)},
        "leave_one_out": {"median_abs_time_error": round(statistics.median(time_errors), 4),
                          "max_abs_time_error": round(max(time_errors), 4),
                          "median_abs_cost_error": round(statistics.median(cost_errors), 4),
                          "max_abs_cost_error": round(max(cost_errors), 4), "runs": loo},
        "gpu_speeds": {"memory_share": round(share, 6), "points": points, "source": NVIDIA_SOURCE},
        "seed": seed_facts(runs),
        "source": SEED_SOURCE,
    }


def example_tokens() -> dict[str, Any]:
    """Token lengths of the bundled examples (train split, default tokenizer): 101 quantiles, and the split sizes."""
    from transformers import AutoTokenizer

    from sagefinetune.data.examples import load_example
    from sagefinetune.entrypoint.contract import DEFAULT_MODEL
    from sagefinetune.entrypoint.training import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL, None))
    out: dict[str, Any] = {"tokenizer": DEFAULT_MODEL}
    for name in ("imdb", "rotten_tomatoes", "bbc_news"):
        dd = load_example(name)
        lengths = sorted(len(ids) for ids in tokenizer(list(dd["train"]["text"]), truncation=False)["input_ids"])
        quantiles = [lengths[min(len(lengths) - 1, round(q / 100 * (len(lengths) - 1)))] for q in range(101)]
        out[name] = {"train": len(dd["train"]), "test": len(dd["test"]), "quantiles": quantiles}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    folder = Path(__file__).resolve().parent
    result = derive()
    (folder / "calibration.json").write_text(json.dumps(result, indent=1) + "\n")
    summary = result["leave_one_out"]
    print(f"wrote {folder / 'calibration.json'}: {result['calibration']}; leave-one-out median |time error| "
          f"{summary['median_abs_time_error']:.1%}, max {summary['max_abs_time_error']:.1%}")
    if "--examples" in args:
        (folder / "example_tokens.json").write_text(json.dumps(example_tokens(), indent=1) + "\n")
        print(f"wrote {folder / 'example_tokens.json'}")


if __name__ == "__main__":
    main()
