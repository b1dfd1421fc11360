"""Run the entry point on this machine, no Docker, in a SageMaker-like directory tree.

    <run_dir>/
      input/data/<channel>/data.jsonl   the prepared splits (SM_CHANNEL_*)
      input/config/hyperparameters.json what SageMaker would write
      model/                            SM_MODEL_DIR: model, tokenizer, config, metrics.json
      output/data/                      SM_OUTPUT_DATA_DIR: classification report, confusion matrix
      checkpoints/                      the checkpoint dir; a second fit with the same run_dir resumes from here
      train.log                         everything the script printed
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.records import RunRecord
from sagefinetune.data.cache import root as cache_root
from sagefinetune.entrypoint import contract
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ConfigError, TrainingError
from sagefinetune.facts.models import preflight
from sagefinetune.plans.hyperparameters import checked_at_fit

if TYPE_CHECKING:
    from sagefinetune.job import Job
    from sagefinetune.plans.training import TrainingPlan

ENTRYPOINT = Path(__file__).resolve().parent.parent / "entrypoint" / "train.py"
#: A local run's checkpoints, inside its run folder (the entry point's SFT_CHECKPOINT_DIR): what an interrupted run
#: resumes from.
CHECKPOINTS_DIR = "checkpoints"


def drop_checkpoints(run_dir: str | Path | None) -> None:
    """Delete a finished run's checkpoints: weights and optimizer state, about three times the model's size, that
    nothing reads again (its model folder holds what it made). A tuning study drops them once a trial is over, a
    grid once a cell has completed; a run of its own keeps them (``run.plot`` marks them)."""
    if run_dir:
        shutil.rmtree(Path(run_dir) / CHECKPOINTS_DIR, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(plan: TrainingPlan, python: str = sys.executable) -> list[str]:
    """The command line: the script with ``--name value`` hyperparameters, under torchrun for several processes."""
    args = [a for k, v in plan.hyperparameters.items() for a in (f"--{k}", v)]
    if plan.processes_per_node == 1:
        return [python, str(ENTRYPOINT), *args]
    return [python, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={plan.processes_per_node}",
            "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(ENTRYPOINT), *args]


def environment(run_dir: Path, channels: dict[str, Path], plan: TrainingPlan, threads: int | None = None) -> dict[str, str]:
    """The SageMaker-like environment; ``threads`` (torch threads per process) overrides OMP_NUM_THREADS."""
    env = dict(os.environ)
    share = str(max(1, (os.cpu_count() or 1) // plan.processes_per_node))  # the cores shared among the processes
    env.update({
        "SM_MODEL_DIR": str(run_dir / "model"),
        "SM_OUTPUT_DATA_DIR": str(run_dir / "output" / "data"),
        "SM_INPUT_DIR": str(run_dir / "input"),
        "SM_INPUT_CONFIG_DIR": str(run_dir / "input" / "config"),
        "SFT_CHECKPOINT_DIR": str(run_dir / CHECKPOINTS_DIR),
        "SM_NUM_GPUS": env.get("SM_NUM_GPUS", "0"),
        "SM_CURRENT_HOST": "algo-1",
        "SM_HOSTS": '["algo-1"]',
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(threads) if threads is not None else env.get("OMP_NUM_THREADS", share),
        "SFT_CACHE_DIR": str(cache_root()),  # the entry point keeps tokenised data there, shared by local runs
    })
    for name, folder in channels.items():
        env[f"SM_CHANNEL_{name.upper()}"] = str(folder)
    return env


class LocalBackend:
    """Runs a plan's entry point in a subprocess and returns a :class:`~sagefinetune.backends.records.RunRecord`.

    Args:
        python: the interpreter that runs the entry point (default: this one). Another environment's Python runs
            the same script on that environment's packages, e.g. the transformers version of a SageMaker image.
        on_line: called with (seconds since the entry point started, line) for each line it prints; when it returns
            a text, the run is stopped (its checkpoints kept) and :class:`~sagefinetune.TrainingError` raised with
            that text as the reason.
        threads: torch threads per process (OMP_NUM_THREADS), e.g. to share the cores between runs at once.
    """

    def __init__(self, python: str = sys.executable, on_line: Callable[[float, str], str | None] | None = None,
                 threads: int | None = None) -> None:
        self.python = python
        self.on_line = on_line
        self.threads = threads

    def fit(self, job: Job, plan: TrainingPlan, *, run_dir: str | Path | None = None, progress: bool = True) -> RunRecord:
        run_dir = _run_folder(run_dir, plan.job_name)
        # the model is readable here, its overrides fit it
        preflight(job.model_id, job.model_config, required=True, reinitialize=job.reinitialize)
        prepared = job.prepare()  # checks columns and labels before any training starts
        notes = checked_at_fit(job, prepared)  # class_weights against the classes; imbalance
        hyperparameters = prepared.with_data_hyperparameters(plan.hyperparameters)
        plan = replace(plan, job_name=run_dir.name, hyperparameters=MappingProxyType(hyperparameters),
                       labels=tuple(prepared.label_map.names_), problem_type=prepared.label_map.problem_type,
                       notes=plan.notes + tuple(n for n in notes if n not in plan.notes))
        for note in notes:
            warnings.warn(redact(note), stacklevel=3)

        from sagefinetune.cost.measure import refine_at_fit

        plan = refine_at_fit(job, plan, prepared)  # max_length="auto" and the estimate, from the rows as read
        hyperparameters["max_length"] = plan.hyperparameters["max_length"]
        _check_same_job(run_dir, hyperparameters, prepared.fingerprint)
        channels = prepared.write(run_dir / "input" / "data")
        (run_dir / "input" / "config").mkdir(parents=True, exist_ok=True)
        (run_dir / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
        record = {**plan.to_dict(), "data_fingerprint": prepared.fingerprint}
        (run_dir / "plan.json").write_text(json.dumps(record, indent=2, default=str))
        env = environment(run_dir, channels, plan, self.threads)
        tracking = _open_tracking(plan, run_dir, env, prepared.fingerprint)
        started = time.monotonic()
        self._run(command(plan, self.python), env, run_dir, plan.job_name, progress)
        run = RunRecord.from_run_dir(run_dir, plan)
        run.tracking = tracking
        run.training_seconds = time.monotonic() - started  # the entry point's run time, as SageMaker counts it
        return run

    def _run(self, cmd: list[str], env: dict[str, str], run_dir: Path, name: str, progress: bool) -> None:
        log_path = run_dir / "train.log"
        tail: deque[str] = deque(maxlen=40)
        bar = _Progress(name, enabled=progress)
        stopped: str | None = None
        with open(log_path, "a", encoding="utf-8") as log:
            proc = subprocess.Popen(cmd, env=env, cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, bufsize=1, start_new_session=True)
            started = time.monotonic()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    tail.append(line.rstrip())
                    bar.feed(line)
                    stopped = self.on_line(time.monotonic() - started, line) if self.on_line is not None else None
                    if stopped:
                        log.write(f"[sagefinetune] stopped: {stopped}\n")
                        _stop(proc)
                        break
                code = proc.wait()
            except BaseException:  # KeyboardInterrupt included: stop the workers, keep the checkpoints
                _stop(proc)
                bar.close()
                raise
            finally:
                log.flush()
        bar.close()
        if stopped:
            raise TrainingError(f"local training run {name} was stopped: {stopped}", job_name=name, reason=stopped,
                                log_path=str(log_path))
        if code != 0:
            raise _failure(name, code, run_dir, list(tail))


def _open_tracking(plan: TrainingPlan, run_dir: Path, env: dict[str, str], fingerprint: str) -> Any:
    """job.track(...): the MLflow run (the same one when the run folder resumes), its settings into ``env``."""
    if plan.tracking is None:
        return None
    from sagefinetune.backends.tracking import RECORD_FILE, open_run

    tracking = open_run(plan.tracking, run_dir.name, reuse=run_dir / RECORD_FILE)
    params = {"data_fingerprint": fingerprint, "instance": plan.instance, "nodes": plan.nodes,
              "processes_per_node": plan.processes_per_node, "backend": plan.backend}
    env.update(plan.tracking.environment(tracking.run_id, run_dir.name, params))
    return tracking


def _failure(name: str, code: int, run_dir: Path, tail: list[str]) -> TrainingError:
    """The error of a failed run: the entry point's own reason (its failure file), else the log's last line."""
    failure = run_dir / "output" / "failure"
    reason = (failure.read_text(encoding="utf-8").strip() if failure.is_file() else "") or next(
        (t for t in reversed(tail) if t and not t.startswith(" ")), f"exit code {code}")
    resume = ""
    if any((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*")):
        resume = f"Once mended, run again with run_dir={str(run_dir)!r} to resume from its checkpoint."
    fix = resume if "Fix:" in reason else f"Fix: read the log for the cause. {resume}"
    log_path = run_dir / "train.log"
    return TrainingError(f"local training run {name} failed (exit code {code}): {reason}\n--- last lines of "
                         f"{log_path} ---\n" + "\n".join(tail[-15:]) + f"\n{fix}".rstrip(),
                         job_name=name, reason=reason, log_path=str(log_path))


def _run_folder(run_dir: str | Path | None, job_name: str) -> Path:
    from sagefinetune.plans.training import launch_name

    if not isinstance(run_dir, (str, Path, type(None))) or run_dir == "":
        raise ConfigError(f"run_dir must be a folder path; got {run_dir!r}. Fix: run_dir='sft-runs/my-run'.")
    folder = Path(run_dir) if run_dir is not None else Path("sft-runs") / launch_name(job_name)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"run_dir={str(run_dir)!r} is a file, not a folder. Fix: pass a folder path (a new one "
                          "starts a run; an existing run folder resumes it).")
    return folder.resolve()


def _check_same_job(run_dir: Path, hyperparameters: dict[str, str], fingerprint: str) -> None:
    """A run folder resumes only the job that made it: other data or settings would resume the wrong model."""
    record_path = run_dir / "plan.json"
    if not record_path.exists() or not (run_dir / CHECKPOINTS_DIR).exists():
        return
    before = json.loads(record_path.read_text())
    changed = sorted(k for k in set(before.get("hyperparameters", {})) | set(hyperparameters)
                     if before.get("hyperparameters", {}).get(k) != hyperparameters.get(k))
    if before.get("data_fingerprint") != fingerprint:
        changed.append("the data")
    if changed:
        raise ConfigError(
            f"run folder {run_dir} holds checkpoints of a different job (changed: {', '.join(changed)}); resuming "
            "would continue the wrong model. Fix: pass a new run_dir, or delete that folder to start over."
        )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _Progress:
    """A tqdm bar driven by the entry point's progress and metric lines."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.enabled = enabled
        self.name = name
        self.bar: Any = None
        self.shown: dict[str, str] = {}

    def feed(self, line: str) -> None:
        if not self.enabled:
            return
        m = contract.PROGRESS_LINE.search(line)
        if m:
            step, total = int(m["step"]), int(m["total"])
            if self.bar is None:
                from tqdm.auto import tqdm

                interval = 0.2 if sys.stderr.isatty() else 10.0  # keep CI logs short
                self.bar = tqdm(total=total, desc=self.name, unit="step", dynamic_ncols=True, mininterval=interval)
            self.bar.update(step - self.bar.n)
            return
        m = contract.METRIC_LINE.search(line)
        if m and self.bar is not None and m["name"] in ("loss", "eval_loss", "eval_accuracy", "eval_f1_micro"):
            self.shown[m["name"]] = f"{float(m['value']):.4g}"
            self.bar.set_postfix(self.shown, refresh=False)
        elif "resuming from" in line and self.bar is None:
            print(redact(line.rstrip()), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
