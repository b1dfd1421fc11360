"""TrainingRun: the outcome of a fit, local or on SageMaker."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.backends.records import Cost, RunRecord
from sagefinetune.errors import ConfigError
from sagefinetune.runtime.export import ExportReport

if TYPE_CHECKING:
    from sagefinetune.endpoint import Endpoint, LocalEndpoint
    from sagefinetune.hub.push import HubPush
    from sagefinetune.plans.training import TrainingPlan
    from sagefinetune.runtime.curves import Curves
    from sagefinetune.runtime.diagnose import Diagnosis
    from sagefinetune.runtime.predict import Predictor

__all__ = ["TrainingRun", "Cost", "ExportedModel"]


@dataclass
class TrainingRun(RunRecord):
    """A finished (or running, on SageMaker) training run: the record a backend returned
    (:class:`~sagefinetune.backends.records.RunRecord`: ``name``, ``backend``, ``metrics``, ``cost``, ``run_dir``, ...)
    and what can be done with it: predict, deploy, export, push to the Hub, wait, diagnose, plot."""

    sagemaker: Any = field(default=None, repr=False)  # SageMaker runs: the backend that follows the job

    @property
    def model_dir(self) -> Path:
        """The local folder with model, tokenizer, config (id2label) and metrics.json (downloads it once on SageMaker)."""
        if self.model_folder is None:
            if self.backend == "sagemaker":
                self.model_folder = self.download()
            else:
                raise ConfigError(f"run {self.name} has no model folder.")
        return self.model_folder

    @property
    def log_path(self) -> Path | None:
        return self.run_dir / "train.log" if self.run_dir else None

    def predictor(self, *, batch_size: int = 32, device: str | int | None = None, precision: str = "auto",
                  runtime: str = "pytorch") -> Predictor:
        """Predictions with label names from this run's model, in this process (``precision``: see
        :class:`~sagefinetune.Predictor`).

        ``runtime``: ``"pytorch"`` (the default) answers with the weights as trained. ``"auto"`` answers with what the
        local endpoint serves: the int8 ONNX export where the check at deploy chose it (``serving.json``; on the
        CPU), else PyTorch; its scores are the endpoint's, to the last digit. ``"onnx"``: the int8 export (it must
        exist).

        Example:
            >>> run.predictor().predict(["i liked the movie"])  # doctest: +SKIP
            [{'label': 'positive', 'score': 0.97}]
            >>> run.deploy()  # doctest: +SKIP
            >>> run.predictor(runtime="auto").runtime.name  # doctest: +SKIP
            'onnx'
        """
        from sagefinetune.entrypoint.serving_choice import served
        from sagefinetune.runtime.predict import Predictor

        if runtime != "pytorch":
            try:
                chosen = served(str(self.model_dir), "cpu" if device in (None, "cpu", -1) else str(device), runtime,
                                precision)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if chosen.runtime == "onnx":
                return Predictor(chosen.folder, batch_size=batch_size)
            precision = chosen.precision  # e.g. fp32 where the check found bf16 more than 1 point worse
        return Predictor(self.model_dir, batch_size=batch_size, device=device, precision=precision)

    def export(self, format: str = "onnx", *, quantize: str | None = None, path: str | Path | None = None,
               test_data: str | Path | None = None, max_accuracy_drop: float = 0.01) -> ExportedModel:
        """Export the model to ONNX for CPU serving, optionally with int8 weights, checked on the test split.

        See :func:`sagefinetune.runtime.export.export`: the export fails with :class:`~sagefinetune.ExportError` when its
        accuracy is more than ``max_accuracy_drop`` (default one point) below the PyTorch model's.

        Example:
            >>> exported = run.export("onnx", quantize="int8")  # doctest: +SKIP
            >>> exported.accuracy, exported.reference_accuracy  # doctest: +SKIP
            (0.9125, 0.915)
            >>> exported.predictor().predict(["i liked the movie"])  # doctest: +SKIP
            [{'label': 'positive', 'score': 0.96}]
        """
        from sagefinetune.runtime.export import export

        report = export(self, format, quantize=quantize, path=path, test_data=test_data,
                        max_accuracy_drop=max_accuracy_drop)
        return ExportedModel(**{f.name: getattr(report, f.name) for f in fields(report)})

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    commit_message: str | None = None, revision: str | None = None) -> HubPush:
        """Publish the model, tokenizer, config, settings, metrics and a model card on the Hugging Face Hub.

        See :func:`sagefinetune.hub.push.push_to_hub`; the token comes from ``token=`` or ``hf auth login``.

        Example:
            >>> run.push_to_hub("me/imdb-minilm", private=True).url  # doctest: +SKIP
            'https://huggingface.co/me/imdb-minilm'
        """
        from sagefinetune.hub.push import push_to_hub

        return push_to_hub(self, repo_id, private=private, token=token, commit_message=commit_message,
                           revision=revision)
    def deploy(self, instance: str = "local", **options: Any) -> Endpoint:
        """Serve this run's model: an :class:`~sagefinetune.endpoint.Endpoint` answering the JSON of
        :doc:`/serve-and-share`. Delete it with ``delete()``, or use it in a ``with`` block.

        Args:
            instance: ``"local"`` (an HTTP server on 127.0.0.1, no charge) or a SageMaker instance type such as
                ``"ml.m5.xlarge"`` (a real-time endpoint, billed per hour while it exists).
            **options: both: ``precision`` (``"auto"``: bf16 where the device computes it natively, else fp32;
                ``"fp32"``; ``"bf16"``), ``ttl`` (``"4h"``: it ends by itself then). Local: ``port``, ``host``,
                ``max_batch_size``, ``max_wait_ms``, ``max_body_mb`` (see :func:`sagefinetune.endpoint.deploy_local`);
                SageMaker: ``serverless=True`` with ``memory_mb`` and ``max_concurrency``, ``scheduler_role`` (with
                ``ttl``), ``autoscale=(min, max)`` and ``target_invocations``, and the options of
                :doc:`/sagemaker-endpoints`.

        Example:
            >>> with run.deploy() as ep:  # doctest: +SKIP
            ...     ep.predict(["The striker scored twice."])
            [{'label': 'sports', 'score': 0.97}]
        """
        if instance == "local" and not options.get("serverless"):
            from sagefinetune.endpoint import deploy_local

            return deploy_local(self.model_dir, **options)
        from sagefinetune.deploy import deploy_run

        return deploy_run(self, instance=None if instance == "local" else instance, **options)

    def batch_predict(self, data: Any, instance: str = "local", output_path: str | Path | None = None,
                      **options: Any) -> Any:
        """Predict a whole data set: JSON Lines in, one prediction per line out, as the endpoints answer.

        Args:
            data: local: a :class:`~sagefinetune.Dataset` (its test split), a list of texts or a ``.jsonl`` file;
                SageMaker: also ``s3://`` data.
            instance: ``"local"`` (the serving handler in this process) or a SageMaker instance type (a batch
                transform job).
            output_path: local: the JSON Lines file to write (default ``<run folder>/predictions.jsonl``);
                SageMaker: the ``s3://`` prefix for the output.
            **options: local: ``batch_size``, ``top_k``, ``all_scores``, ``progress`` (see
                :func:`sagefinetune.serving.batch_predict_local`).

        Returns:
            local: the path of the written file.

        Example:
            >>> path = run.batch_predict(["a match report", "a budget speech"])  # doctest: +SKIP
        """
        if instance == "local":
            from sagefinetune.serving.batch import batch_predict_local

            default = (self.run_dir or Path("sft-runs") / self.name) / "predictions.jsonl"
            return batch_predict_local(self.model_dir, data, output_path or default, **options)
        from sagefinetune.deploy import batch_transform_run

        return batch_transform_run(self, data, instance=instance, output_path=output_path, **options)

    def download(self, path: str | Path | None = None) -> Path:
        """Download and unpack the model artifact of a SageMaker run; returns the folder."""
        if self.sagemaker is None or not hasattr(self.sagemaker, "download"):
            raise ConfigError(f"run {self.name} ({self.backend}) has nothing to download; its model is in {self.model_folder}.")
        folder = self.sagemaker.download(self, path)
        self.model_folder = Path(folder)
        return self.model_folder

    def wait(self, *, logs: bool = False, progress: bool = True, timeout: float | None = None) -> TrainingRun:
        """Follow a SageMaker job to its end and return the finished run (raises if it failed)."""
        if self.backend != "sagemaker" or self.sagemaker is None:
            return self
        finished = TrainingRun.from_record(self.sagemaker.wait(self, logs=logs, progress=progress, timeout=timeout),
                                           self.sagemaker)
        if finished.tracking is not None and finished.status == "Completed":
            from sagefinetune.backends.tracking import finish_run

            finish_run(finished)  # the cost, the confusion-matrix plot and the model card, into its MLflow run
        if progress:
            from sagefinetune.runtime.diagnose import report

            report(finished)
        return finished

    # ---- curves and diagnosis -----------------------------------------------------------------------------------
    def log_lines(self) -> list[str]:
        """What the entry point printed: a local run's train.log, or a SageMaker job's CloudWatch log events."""
        if self.backend == "sagemaker" and self.sagemaker is not None:
            return [e["message"] for e in self.sagemaker.log_events(self.name)]
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        raise ConfigError(f"run {self.name} has no log to read (no run folder, no SageMaker job).")

    def curves(self) -> Curves:
        """The loss, gradient norm, learning rate and evaluation metrics as logged, and the label counts."""
        from sagefinetune.runtime.curves import Curves

        return Curves.from_lines(self.log_lines())

    def diagnose(self) -> Diagnosis:
        """What went wrong, read from this run's own curves: overfitting, a flat or diverged loss, no better than the
        majority class, class imbalance, low GPU throughput. See :mod:`sagefinetune.runtime.diagnose`.

        Example:
            >>> print(run.diagnose())  # doctest: +SKIP
            diagnosis of sft-...: 1 finding(s)
              overfitting: the evaluation loss rose for 3 evaluations in a row ...
                try: epochs=2 (the evaluation loss was lowest after epoch 2)
        """
        from sagefinetune.runtime.diagnose import diagnose

        plan, gpu, max_length = self.plan, None, None
        if plan is not None:
            gpu = plan.sagemaker.gpu if plan.sagemaker is not None else None
            max_length = int(float(plan.hyperparameters.get("max_length", 0))) or None
        curves = self.curves()
        multi = bool(plan and plan.problem_type == "multi_label_classification") or "eval_f1_micro" in curves.final
        return diagnose(curves, run=self.name, multi_label=multi, gpu=gpu, max_length=max_length,
                        estimate=getattr(plan, "estimate", None))

    def plot(self, path: str | Path | None = None) -> Any:
        """Training and evaluation loss and the evaluation metrics against steps, epochs and the saved model marked.

        Args:
            path: save the figure there (PNG, SVG, PDF by extension).

        Returns:
            The matplotlib Figure (shown inline in a notebook).
        """
        from sagefinetune.backends.local import CHECKPOINTS_DIR
        from sagefinetune.runtime.curves import plot_curves

        folder = self.run_dir / CHECKPOINTS_DIR if self.run_dir else None
        kept = sorted(int(p.name.split("-")[1]) for p in folder.glob("checkpoint-*")
                      if p.name.split("-")[1].isdigit()) if folder and folder.exists() else []
        shown = ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items() if k in ("eval_accuracy", "eval_f1", "eval_f1_micro"))
        return plot_curves(self.curves(), path, title=f"{self.name}  {shown}", checkpoints=kept)

    @classmethod
    def from_record(cls, record: RunRecord, backend: Any = None) -> TrainingRun:
        """Wrap what a backend returned; ``backend`` is kept to follow, download and read logs of a SageMaker job."""
        values = {f.name: getattr(record, f.name) for f in fields(RunRecord)}
        return cls(**values, sagemaker=backend)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, plan: TrainingPlan | None = None) -> TrainingRun:
        """A local run's outcome, read back from its run folder."""
        return cls.from_record(RunRecord.from_run_dir(run_dir, plan))

    @classmethod
    def attach(cls, name: str, *, boto_session: Any = None, region: str | None = None) -> TrainingRun:
        """Re-attach to a SageMaker training job by name, e.g. after the client died.

        Example:
            >>> run = TrainingRun.attach("sft-all-minilm-l6-v2-20261121-101500")  # doctest: +SKIP
            >>> run.wait().metrics["eval_accuracy"]  # doctest: +SKIP
        """
        from sagefinetune.backends.sagemaker.training import SageMakerBackend

        backend = SageMakerBackend(boto_session, region=region)
        return cls.from_record(backend.attach(name), backend)

    def __repr__(self) -> str:
        shown = {k: round(v, 4) for k, v in self.metrics.items() if k in ("eval_accuracy", "eval_f1", "eval_f1_micro")}
        return f"<TrainingRun {self.name} {self.backend} {self.status} {shown} cost={self.cost.usd:.2f}$>"


@dataclass(frozen=True)
class ExportedModel(ExportReport):
    """An exported model folder, the accuracy check it passed, and a local endpoint on it (``run.export`` returns one).

    See :class:`~sagefinetune.runtime.export.ExportReport` for the attributes.
    """

    def deploy(self, **options: Any) -> LocalEndpoint:
        """Serve the exported model on this machine (see :func:`sagefinetune.endpoint.deploy_local`): the same JSON
        as the PyTorch model's endpoint, from ONNX Runtime.

        Example:
            >>> with run.export("onnx", quantize="int8").deploy() as ep:  # doctest: +SKIP
            ...     ep.predict(["i liked the movie"])
            [{'label': 'positive', 'score': 0.96}]
        """
        from sagefinetune.endpoint import deploy_local

        return deploy_local(self.path, **options)
