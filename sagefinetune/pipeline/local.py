"""``pipeline.run_local()``: the pipeline's graph on this machine, in order, with a folder per run. No Docker.

    sft-pipelines/<pipeline>/<run id>/
      run.json        parameters, and each step: status, the hash of its inputs, seconds, outputs
      train-<hash>/   the training run folder (job.fit's: input/, model/, checkpoints/, train.log)
      evaluate-<hash>/  evaluation.json, classification_report.json, confusion_matrix.json, evaluate.log

Step folders are named by the hash of their inputs, so a run continued after the Job changed never resumes the wrong
model.

A step is skipped when it finished before with the same inputs (a content hash of the data, hyperparameters, model
and code): in this run (a run that was interrupted is continued by the next ``run_local()``), or, with
``cache=True``, in an earlier run of the same pipeline folder (as SageMaker's step caching would).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.console import say
from sagefinetune.errors import ConfigError, PipelineError
from sagefinetune.pipeline.conditions import recheck
from sagefinetune.pipeline.parameters import APPROVAL

if TYPE_CHECKING:
    from sagefinetune.backends.records import ModelVersion
    from sagefinetune.endpoint import Endpoint
    from sagefinetune.pipeline.spec import Pipeline

RUN_FILE = "run.json"
CACHED_STEPS = ("train", "evaluate")  # deterministic and costly: reused across runs; register and deploy never are


@dataclass
class PipelineRun:
    """One run of a pipeline on this machine.

    Attributes:
        folder: the run folder (run.json and a folder per step).
        status: ``Succeeded``, ``Failed`` (the condition or a step) or ``Interrupted``.
        steps: step name -> record (``status``, ``inputs`` hash, ``seconds``, ``outputs``, ``reused_from``).
        metrics: the evaluation step's metrics.
        version: the registered :class:`~sagefinetune.registry.ModelVersion` (None when the condition failed).
        endpoint: the local endpoint when the pipeline deploys and the version is approved (delete it when done).
    """

    pipeline: str
    run_id: str
    folder: Path
    parameters: dict[str, Any]
    status: str = "Running"
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure_reason: str | None = None
    failed_step: str | None = None
    version: ModelVersion | None = None
    endpoint: Endpoint | None = None

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.steps.get("evaluate", {}).get("outputs", {}).get("metrics", {}))

    def save(self) -> None:
        record = {"pipeline": self.pipeline, "run_id": self.run_id, "status": self.status, "parameters": self.parameters,
                  "steps": self.steps, "failure_reason": self.failure_reason, "failed_step": self.failed_step}
        tmp = self.folder / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.folder / RUN_FILE)

    def __repr__(self) -> str:
        version = f" v{self.version.version} {self.version.status}" if self.version else ""
        shown = {k: round(v, 4) for k, v in self.metrics.items() if k in ("eval_accuracy", "eval_f1", "eval_f1_micro")}
        return f"<PipelineRun {self.pipeline}/{self.run_id} {self.status}{version} {shown}>"


def run_local(pipe: Pipeline, *, folder: str | Path | None, parameters: dict[str, Any], registry: str | Path | None,
              cache: bool, progress: bool) -> PipelineRun:
    if pipe.job.dataset.is_remote:
        raise ConfigError("from_s3 data is read by SageMaker in place; run_local() trains here, on local data. "
                          "Fix: pipe.upsert(role=...); pipe.start(), or a Job on local files for run_local().")
    root = Path(folder) if folder is not None else Path("sft-pipelines") / pipe.name
    run = open_run(root.resolve(), pipe, parameters)
    try:
        _run_steps(pipe, run, root.resolve(), registry, cache, progress)
    except PipelineError:
        raise
    except KeyboardInterrupt:
        run.status = "Interrupted"
        run.save()
        say(f"run {run.run_id} interrupted; run_local() again continues it (finished steps are not repeated)")
        raise
    except BaseException as exc:
        run.status, run.failure_reason = "Failed", f"{type(exc).__name__}: {exc}"
        run.save()
        raise
    return run


def _run_steps(pipe: Pipeline, run: PipelineRun, root: Path, registry: str | Path | None, cache: bool,
               progress: bool) -> None:
    from sagefinetune.backends.sagemaker.source_code import source_files
    from sagefinetune.entrypoint.evaluation import READ_HYPERPARAMETERS

    prepared = pipe.job.prepare()  # the rows' content hash is the train step's main input
    recheck(pipe.conditions, prepared.label_map.problem_type)
    hyperparameters = prepared.with_data_hyperparameters(pipe.job.plan().hyperparameters)
    train_inputs = {"data": prepared.fingerprint, "hyperparameters": hyperparameters, "code": _code_hash(source_files())}
    train = step(run, root, "train", train_inputs, cache, lambda d: _train(pipe, d, progress))
    evaluate_inputs = {"model": train["model_hash"], "test": train["test_hash"],
                       "code": _code_hash(source_files("evaluation.py")),
                       "read": {k: v for k, v in hyperparameters.items() if k in READ_HYPERPARAMETERS}}
    evaluation = step(run, root, "evaluate", evaluate_inputs, cache,
                      lambda d: _evaluate(d, train, evaluate_inputs["read"]))
    metrics = evaluation["metrics"]
    thresholds = {c.metric: run.parameters.get(c.parameter, c.threshold) for c in pipe.conditions}
    misses = [m for c in pipe.conditions if (m := c.check(metrics, thresholds[c.metric])) is not None]
    run.steps["condition"] = {"status": "Failed" if misses else "Succeeded", "inputs": _hash([metrics, thresholds]),
                              "outputs": {"thresholds": thresholds, "misses": misses}}
    if misses:
        run.status, run.failed_step = "Failed", "condition"
        run.failure_reason = "; ".join(misses)
        run.save()
        raise PipelineError(
            f"pipeline {pipe.name} (run {run.run_id}): the condition failed: {run.failure_reason}. Nothing was "
            f"registered. Fix: a better model (more rows or epochs), or another threshold "
            f"(parameters={{{pipe.conditions[0].parameter!r}: ...}}). Reports: {evaluation['folder']}.",
            step="condition", run=run)
    say(f"condition met: {', '.join(f'{k} = {metrics[k]:.4g} (threshold {v:g})' for k, v in thresholds.items())}")
    status = run.parameters.get(APPROVAL, pipe.approval)
    register_inputs = {"model": train["model_hash"], "metrics": metrics, "group": pipe.group, "status": status}
    registered = step(run, root, "register", register_inputs, False,
                      lambda d: _register(pipe, run, train, metrics, prepared, status, registry))
    from sagefinetune.registry import Registry

    reg = Registry(pipe.group, path=registry)
    run.version = reg.get(int(registered["version"]))
    if pipe.deploy is not None:
        _deploy(pipe, run, reg)
    run.status = "Succeeded"
    run.save()


def step(run: PipelineRun, root: Path, name: str, inputs: Any, cache: bool,
         action: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run a step in ``<run>/<name>``, unless it finished before with the same inputs; returns its outputs."""
    digest = _hash(inputs)
    done = run.steps.get(name)
    if done and done.get("status") == "Succeeded" and done.get("inputs") == digest:
        say(f"{name}: finished earlier in this run with the same inputs; not repeated")
        return dict(done["outputs"])
    earlier = _cached(root, run, name, digest) if cache and name in CACHED_STEPS else None
    if earlier is not None:
        say(f"{name}: reused from run {earlier[0]} (same inputs {digest[:12]})")
        run.steps[name] = {"status": "Succeeded", "inputs": digest, "seconds": 0.0, "outputs": earlier[1],
                           "reused_from": earlier[0]}
        run.save()
        return dict(earlier[1])
    run.steps[name] = {"status": "Running", "inputs": digest}
    run.save()
    started = time.time()
    say(f"{name}: running")
    outputs = action(run.folder / f"{name}-{digest[:8]}")
    run.steps[name] = {"status": "Succeeded", "inputs": digest, "seconds": round(time.time() - started, 2),
                       "outputs": outputs}
    run.save()
    return outputs


def open_run(root: Path, pipe: Pipeline, parameters: dict[str, Any]) -> PipelineRun:
    """The newest run when it did not finish (interrupted, or a step failed), else a new run folder."""
    runs = sorted(p.parent for p in root.glob(f"*/{RUN_FILE}"))
    if runs:
        last = json.loads((runs[-1] / RUN_FILE).read_text())
        unfinished = last["status"] in ("Running", "Interrupted") or (
            last["status"] == "Failed" and last.get("failed_step") != "condition")
        if unfinished:
            say(f"continuing run {last['run_id']} of pipeline {pipe.name} ({last['status']})")
            return PipelineRun(pipe.name, last["run_id"], runs[-1], parameters, "Running", last["steps"])
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    folder = root / run_id
    suffix = 1
    while True:
        try:
            folder.mkdir(parents=True)
            break
        except FileExistsError:
            suffix += 1
            folder = root / f"{run_id}-{suffix}"
    run = PipelineRun(pipe.name, folder.name, folder, parameters)
    run.save()
    say(f"pipeline {pipe.name}: run {run.run_id} in {folder}")
    return run


def _cached(root: Path, run: PipelineRun, name: str, digest: str) -> tuple[str, dict[str, Any]] | None:
    for path in sorted(root.glob(f"*/{RUN_FILE}"), reverse=True):
        if path.parent == run.folder:
            continue
        record = json.loads(path.read_text()).get("steps", {}).get(name, {})
        outputs = record.get("outputs", {})
        if record.get("status") == "Succeeded" and record.get("inputs") == digest and Path(outputs.get("folder", "")).is_dir():
            return record.get("reused_from") or path.parent.name, outputs  # the run that ran it
    return None


# ---- the steps ---------------------------------------------------------------------------------------------------
def _train(pipe: Pipeline, folder: Path, progress: bool) -> dict[str, Any]:
    # what the model and test data hold, as an upload lists them (hidden files and bytecode caches left out)
    from sagefinetune.backends.sagemaker.s3_content import content_hash

    run = pipe.job.fit(run_dir=folder, progress=progress)  # the same folder again resumes from its checkpoints
    test = folder / "input" / "data" / "test"
    if not test.is_dir():
        raise PipelineError(f"pipeline {pipe.name}: the data has no test split for the evaluation step. "
                            "Fix: Dataset.split(test=0.1) (or a test split in the files).", step="train")
    return {"folder": str(folder), "model_dir": str(run.model_dir), "model_hash": content_hash(run.model_dir),
            "test_dir": str(test), "test_hash": content_hash(test), "training_metrics": run.metrics}


def _evaluate(folder: Path, train: dict[str, Any], read: dict[str, str]) -> dict[str, Any]:
    from sagefinetune.entrypoint import evaluation

    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, evaluation.__file__, "--model_dir", train["model_dir"], "--test_dir", train["test_dir"],
               "--output_dir", str(folder), *[a for k, v in read.items() for a in (f"--{k}", v)]]
    log_path = folder / "evaluate.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder).returncode
    if code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise PipelineError(f"the evaluation step failed (exit code {code}):\n" + "\n".join(tail)
                            + f"\nFix: read {log_path}.", step="evaluate")
    report = json.loads((folder / evaluation.REPORT).read_text())
    return {"folder": str(folder), "metrics": report["metrics"], "rows": report["rows"]}


def _register(pipe: Pipeline, run: PipelineRun, train: dict[str, Any], metrics: dict[str, float], prepared: Any,
              status: str, registry: str | Path | None) -> dict[str, Any]:
    from sagefinetune.registry import Registry

    version = Registry(pipe.group, path=registry).register(
        train["model_dir"], metrics=metrics, labels=list(prepared.label_map.names_), status=status,
        inference_image=inference_image(pipe), source={"pipeline": pipe.name, "run": run.run_id,
                                                        "data": prepared.fingerprint})
    say(f"registered {pipe.group} v{version.version} ({status})")
    return {"version": version.version, "model": version.model, "status": status}


def _deploy(pipe: Pipeline, run: PipelineRun, reg: Any) -> None:
    version = run.version
    assert version is not None
    if version.status != "Approved":
        note = (f"{pipe.group} v{version.version} is {version.status}: not deployed. Fix: "
                f"Registry({pipe.group!r}).approve({version.version}), then .deploy({version.version}).")
        run.steps["deploy"] = {"status": "Skipped", "outputs": {"reason": note}}
        say(note)
        return
    run.endpoint = reg.deploy(version.version, "local")
    run.steps["deploy"] = {"status": "Succeeded", "outputs": {"endpoint": run.endpoint.name, "url": run.endpoint.url}}


def inference_image(pipe: Pipeline) -> str | None:
    """The inference image paired with the pipeline's training image (GPU when it deploys on a GPU, else CPU)."""
    from sagefinetune.facts import images

    spec = pipe.plan.sagemaker
    if spec is None:
        return None
    return images.uri(spec.image, spec.region, "inference", "gpu" if pipe.deploy and pipe.deploy.gpu else "cpu")


# ---- hashes -------------------------------------------------------------------------------------------------------
def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _code_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
