"""Job: an immutable builder of a fine-tuning job. Every call returns a new Job."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagefinetune.data.dataset import Dataset
from sagefinetune.data.labels import LabelMap
from sagefinetune.entrypoint.contract import DEFAULT_MODEL
from sagefinetune.entrypoint.redaction import redact
from sagefinetune.errors import ConfigError
from sagefinetune.facts.models import check_name
from sagefinetune.plans.hyperparameters import (
    DEFAULT_HYPERPARAMETERS,
    check_hyperparameter,
)

if TYPE_CHECKING:
    from sagefinetune.data.prepared import Prepared
    from sagefinetune.pipeline import Pipeline
    from sagefinetune.plans.space import Range
    from sagefinetune.plans.tracking import TrackingSettings
    from sagefinetune.plans.training import TrainingPlan
    from sagefinetune.plans.tuning import TuningPlan
    from sagefinetune.run import TrainingRun
    from sagefinetune.tuning.result import TuningResult

__all__ = ["Job"]

@dataclass(frozen=True, eq=False)
class Job:
    """A fine-tuning job: data, labels, model and hyperparameters.

    Example:
        >>> job = (Job.from_dataset(Dataset.example("rotten_tomatoes"))
        ...        .hyperparameters(epochs=1, batch_size=32))
        >>> job.hyperparameters_["epochs"]
        1
    """

    dataset: Dataset
    label_map: LabelMap | None = None
    model_id: str = DEFAULT_MODEL
    model_config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    hyperparameters_: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_HYPERPARAMETERS)
    reinitialize: bool = False  # config overrides may discard pretrained weights (Job.model)
    tracking: TrackingSettings | None = None  # Job.track: experiment tracking (MLflow)

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_hub(
        cls, path: str, name: str | None = None, *, text: str | None = None, label: str | None = None,
        text_pair: str | None = None, splits: Mapping[str, str] | None = None, revision: str | None = None,
        token: str | None = None,
    ) -> Job:
        """A job on a Hub dataset: ``Job(Dataset.from_hub(path, name, ...).columns(text=..., label=...))``.

        The columns default to ``text`` and ``label``; for ``"amazon_reviews_multi"`` (its maintained copy, see
        :doc:`/real-data`) to ``review_body`` and ``stars``.

        Example:
            >>> job = Job.from_hub("amazon_reviews_multi").map_labels(
            ...     {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"})
            >>> job.dataset.text, job.dataset.label, job.label_map.names_
            ('review_body', 'stars', ('negative', 'neutral', 'positive'))
        """
        dataset = Dataset.from_hub(path, name, splits=splits, revision=revision, token=token)
        return cls(dataset.columns(text=text, label=label, text_pair=text_pair))

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> Job:
        """A job on any :class:`Dataset`."""
        if not isinstance(dataset, Dataset):
            raise ConfigError(f"Job.from_dataset needs a sagefinetune.Dataset; got {type(dataset).__name__}. "
                              "Fix: Job.from_dataset(Dataset.from_csv('data.csv').columns(text=..., label=...)).")
        return cls(dataset)

    # ---- builders -----------------------------------------------------------------------------------
    def map_labels(self, mapping: Mapping[Hashable, str] | LabelMap) -> Job:
        """Map raw label values to class names (many-to-one allowed), or pass a :class:`LabelMap`."""
        label_map = mapping if isinstance(mapping, LabelMap) else LabelMap(mapping)
        return dataclasses.replace(self, label_map=label_map)

    def model(self, name: str, *, reinitialize: bool = False, **config: Any) -> Job:
        """The model to fine-tune: a Hub id, a local folder, or (SageMaker) an ``s3://`` folder given as a channel.

        A local folder trains here as it is, and on SageMaker is uploaded as the model channel (once per content).
        Keyword arguments override fields of the model config, e.g. ``num_hidden_layers=2`` to keep only the first
        two layers (a quick, smaller model) or ``hidden_dropout_prob=0.2``; at fit they are checked against the
        model's config: a misspelt field stops the fit (did you mean ...), and so does one that discards pretrained
        weights (``hidden_size``, ``intermediate_size``, ``vocab_size``, more layers change weights' shapes, so they
        would start at random; ``num_attention_heads`` reads the same weights as other heads) unless
        ``reinitialize=True`` says it is meant: then the fit warns which pretrained weights are discarded.

        Example:
            >>> job = Job.from_dataset(Dataset.example("imdb"))
            >>> job.model("sentence-transformers/all-MiniLM-L6-v2", hidden_size=192, reinitialize=True).reinitialize
            True
        """
        name = check_name(name)
        if not isinstance(reinitialize, bool):
            raise ConfigError(f"model(..., reinitialize=...) must be True or False; got {reinitialize!r}. "
                              "Fix: reinitialize=True to accept overrides that discard pretrained weights.")
        if reinitialize and not config:
            raise ConfigError("model(..., reinitialize=True) accepts config overrides that discard pretrained weights, "
                              "but no override was given. Fix: drop reinitialize=True, or add the overrides, e.g. "
                              ".model(..., hidden_size=192, reinitialize=True).")
        for key in ("num_labels", "id2label", "label2id", "problem_type"):
            if key in config:
                raise ConfigError(f"model(..., {key}=...) is set from the label map. Fix: use .map_labels(...) instead.")
        try:
            json.dumps(config)
        except TypeError as exc:
            raise ConfigError(f"model config overrides travel as a JSON hyperparameter; {config!r} is not JSON ({exc}). "
                              "Fix: pass numbers, strings, booleans, lists or dicts.") from None
        return dataclasses.replace(self, model_id=name, model_config=MappingProxyType(dict(config)),
                                   reinitialize=reinitialize)

    def hyperparameters(self, **values: Any) -> Job:
        """Set training hyperparameters; unset ones keep their value. See :doc:`/hyperparameters`.

        Example:
            >>> Job.from_dataset(Dataset.example("imdb")).hyperparameters(epochs=1, max_length=128).hyperparameters_["max_length"]
            128
        """
        for name, value in values.items():
            check_hyperparameter(name, value)
        values = {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}  # class_weights: a copy
        merged = {**self.hyperparameters_, **values}
        return dataclasses.replace(self, hyperparameters_=MappingProxyType(merged))

    def track(self, tracker: str = "mlflow", *, experiment: str = "sagefinetune", uri: str | Path | None = None) -> Job:
        """Track the runs of this job: parameters, the loss and evaluation curves, final metrics, cost, the
        confusion-matrix plot and the model card, logged into an MLflow run. See :doc:`/tracking`.

        Args:
            tracker: ``"mlflow"``.
            experiment: the MLflow experiment (made when missing).
            uri: the tracking URI. None: ``./mlruns/mlflow.db`` (a SQLite store, absolute, artifacts beside it), or
                a folder (its ``mlflow.db``); ``sqlite:``/``file:``/database URIs, ``https://`` servers and (also on
                SageMaker) a SageMaker MLflow tracking server's ARN. A store on this machine is refused for a
                SageMaker job at ``plan()``.

        The run's URI and id are ``run.tracking`` after :meth:`fit`.

        Example:
            >>> job = Job.from_dataset(Dataset.example("imdb")).track("mlflow", experiment="reviews")
            >>> job.tracking.experiment, job.tracking.uri is None
            ('reviews', True)
        """
        from sagefinetune.plans.tracking import check_tracking

        return dataclasses.replace(self, tracking=check_tracking(tracker, experiment, uri))

    # ---- planning and running ------------------------------------------------------------------------
    def plan(self, instance: str = "local", nodes: int = 1, **options: Any) -> TrainingPlan:
        """What will run, where, with what: pure, no I/O. See :class:`~sagefinetune.plans.training.TrainingPlan`.

        ``plan.estimate`` predicts time and cost (see :doc:`/benchmark-grid`); ``train_rows=N`` gives the row count of
        data not read before launch, ``scale_lr=True`` raises the learning rate with the square root of the global
        batch, ``local_speed=`` (from :func:`~sagefinetune.measure_speed`) times a local plan.

        ``deadline=`` (seconds, ``"90m"``, ``"3h"``) and/or ``budget=`` (USD) search the setups instead: the plan of
        the cheapest GPU type x nodes x spot that meets both (the fastest within the budget when only a budget is
        given), with every candidate in ``plan.candidates``; see :doc:`/sagemaker` and
        :func:`~sagefinetune.plans.search.plan_within`.

        Example:
            >>> plan = Job.from_dataset(Dataset.example("imdb")).plan(deadline="30m", budget=1)
            >>> plan.backend, plan.search.chosen.cost <= 1, plan.search.chosen.seconds <= 1800
            ('sagemaker', True, True)
        """
        ask = {k: options.pop(k) for k in ("deadline", "budget") if k in options}
        if any(v is not None for v in ask.values()):
            from sagefinetune.plans.search import plan_within

            return plan_within(self, instance=instance, nodes=nodes, **ask, **options)
        from sagefinetune.plans.training import make_plan

        return make_plan(self, instance=instance, nodes=nodes, **options)

    def prepare(self) -> Prepared:
        """Load the rows, check columns and labels, and encode labels to class ids (reads the data)."""
        from sagefinetune.data.prepare import prepare

        return prepare(self)

    def fit(self, instance: str = "local", nodes: int = 1, *, run_dir: str | Path | None = None,
            progress: bool = True, wait: bool = True, logs: bool = False, boto_session: Any = None,
            **options: Any) -> TrainingRun:
        """Train: locally (``instance="local"``, no Docker) or as a SageMaker training job.

        Args:
            instance: ``"local"`` or a SageMaker instance type such as ``"ml.g5.xlarge"``.
            nodes: local: worker processes (torch.distributed, gloo); SageMaker: instances.
            run_dir: local runs: the run folder. Run again with the same folder to resume from its last checkpoint.
            progress: show a progress bar (local) or status transitions (SageMaker).
            wait: SageMaker: follow the job to its end (True) or return at once (False).
            logs: SageMaker: print the job's log lines while following it.
            boto_session: SageMaker: the ``boto3.Session`` to use (default: the usual credential chain).
            **options: SageMaker options, see :doc:`/sagemaker`: ``spot``, ``max_run``, ``max_wait``, ``role``,
                ``bucket``, ``region``, ``tags``, ``volume_size``, ``subnets``, ``security_groups``,
                ``network_isolation``, ``volume_kms_key``, ``output_kms_key``, ``encrypt_inter_node``,
                ``environment``, ``checkpoint_s3``, ``transformers_version``, ``price_per_hour``, ``job_name``; and
                ``scale_lr`` (see :meth:`plan`), locally too.

        Returns:
            A :class:`~sagefinetune.TrainingRun` with the final metrics and the model. When it has finished (and
            ``progress``), its diagnosis (:meth:`TrainingRun.diagnose`) is printed.
        """
        from sagefinetune.run import TrainingRun

        plan = self.plan(instance=instance, nodes=nodes, **options)
        if plan.backend == "local":
            from sagefinetune.backends.local import LocalBackend

            run = TrainingRun.from_record(LocalBackend().fit(self, plan, run_dir=run_dir, progress=progress))
        else:
            from sagefinetune.backends.sagemaker.training import SageMakerBackend

            backend = SageMakerBackend(boto_session, region=plan.sagemaker.region if plan.sagemaker else None)
            run = TrainingRun.from_record(backend.fit(self, plan, progress=progress, wait=wait, logs=logs), backend)
        if run.tracking is not None and run.status == "Completed":
            from sagefinetune.backends.tracking import finish_run

            finish_run(run)  # the cost, the confusion-matrix plot and the model card, into the same MLflow run
        if progress and (plan.backend == "local" or wait):
            from sagefinetune.runtime.diagnose import report

            report(run)  # the findings of run.diagnose(), printed
        return run

    def tune_plan(self, space: Mapping[str, Range], *, objective: str = "eval_f1", direction: str | None = None,
                  trials: int = 8, parallel: int = 2, instance: str = "local", nodes: int = 1,
                  strategy: str = "bayesian", pruner: Any = None, seed: int = 0, baseline: bool = False,
                  **options: Any) -> TuningPlan:
        """What :meth:`tune` would run, checked, with its total cost (trials x per trial): pure, no I/O.

        Example:
            >>> from sagefinetune import LogUniform
            >>> Job.from_dataset(Dataset.example("imdb")).tune_plan({"learning_rate": LogUniform(1e-5, 1e-4)}).trials
            8
        """
        from sagefinetune.tuning.tune import make_tuning_plan

        return make_tuning_plan(self, space, objective=objective, direction=direction, trials=trials, parallel=parallel,
                                instance=instance, nodes=nodes, strategy=strategy, pruner=pruner, seed=seed,
                                baseline=baseline, **options)

    def tune(self, space: Mapping[str, Range], *, objective: str = "eval_f1", direction: str | None = None,
             trials: int = 8, parallel: int = 2, instance: str = "local", nodes: int = 1, strategy: str = "bayesian",
             pruner: Any = None, seed: int = 0, baseline: bool = False, run_dir: str | Path | None = None,
             progress: bool = True, wait: bool = True, boto_session: Any = None, **options: Any) -> TuningResult:
        """Search hyperparameters: Optuna over the local backend here, SageMaker's tuner on an ``ml.*`` instance.

        Args:
            space: hyperparameter -> :class:`~sagefinetune.LogUniform`, :class:`~sagefinetune.Uniform`,
                :class:`~sagefinetune.IntRange` or :class:`~sagefinetune.Choice`; the others keep the Job's values.
            objective: a final metric: ``eval_f1`` (macro F1), ``eval_accuracy``, ``eval_mcc``, ``eval_loss``,
                ``eval_f1_micro`` (multi-label), ...: the evaluation after training, never a running value.
            direction: ``"maximize"`` or ``"minimize"``; by default ``eval_loss`` is minimised, scores maximised.
            trials: trials in all (a resumed local study counts those already finished).
            parallel: trials at once (here the cores are split between them; on SageMaker, instances at once).
            strategy: ``"bayesian"`` (TPE here), ``"random"``, ``"grid"`` (every Choice combination, in order) or
                ``"hyperband"``.
            pruner: stop poor trials after an epoch: ``"median"``, ``"successive_halving"``, ``"hyperband"`` or an
                optuna pruner here; on SageMaker ``"median"`` is its early stopping ("Auto").
            seed: the sampler's seed.
            baseline: here: trial 0 runs the Job's own values, the study's yardstick.
            run_dir: here: the study folder; run again with the same folder to resume the study.
            wait: SageMaker: follow the tuning job to its end.
            **options: SageMaker options, as for :meth:`fit` (``spot``, ``max_run``, ``role``, ``bucket``, ...).

        Returns:
            A :class:`~sagefinetune.TuningResult`: ``.table``, ``.best_hyperparameters``, ``.best_job``,
            ``.best_run``, ``.plot()``.
        """
        from sagefinetune.tuning.tune import tune

        return tune(self, space, objective=objective, direction=direction, trials=trials, parallel=parallel,
                    instance=instance, nodes=nodes, strategy=strategy, pruner=pruner, seed=seed, baseline=baseline,
                    run_dir=run_dir, progress=progress, wait=wait, boto_session=boto_session, **options)

    def pipeline(self, name: str, *, instance: str = "local", nodes: int = 1, condition: Mapping[str, float],
                 register: str | None = None, deploy: Mapping[str, Any] | None = None,
                 approval: str = "PendingManualApproval", boto_session: Any = None, **options: Any) -> Pipeline:
        """An MLOps pipeline of this job: train -> evaluate -> condition -> register (-> deploy). See :doc:`/pipelines`.

        Args:
            name: the pipeline's name (letters, digits and '-').
            instance: the training instance type (``"local"``: the pipeline runs here only, with ``run_local()``).
            nodes: training instances.
            condition: the gate: ``{"eval_f1": 0.85}`` registers the model only when the evaluation's macro F1 is
                at least 0.85 (``<=`` for ``eval_loss``); several metrics must all pass.
            register: the model group (default: the pipeline's name).
            deploy: None, ``{"instance": "ml.m5.xlarge"}``, ``{"serverless": True, "memory_mb": 3072}`` or
                ``{"instance": "local"}``: serve the version when it is registered as ``Approved``.
            approval: the status a new version gets: ``PendingManualApproval`` (default) or ``Approved``.
            boto_session: SageMaker: the ``boto3.Session`` for upsert() and start().
            **options: the SageMaker options of :meth:`fit` (``spot``, ``max_run``, ``bucket``, ``role``, ...).

        Example:
            >>> pipe = (Job.from_dataset(Dataset.example("bbc_news"))
            ...         .pipeline("news", instance="ml.g5.xlarge", condition={"eval_f1": 0.9}, register="news-models"))
            >>> str(pipe.conditions[0])
            'eval_f1 >= 0.9'
        """
        from sagefinetune.pipeline.spec import make_pipeline

        return make_pipeline(self, name, instance=instance, nodes=nodes, condition=condition, register=register,
                             deploy=deploy, approval=approval, boto_session=boto_session, **options)

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters_.items())
        labels = f" labels={self.label_map!r}" if self.label_map else ""
        cfg = f" config={dict(self.model_config)}" if self.model_config else ""
        cfg += " reinitialize=True" if self.reinitialize else ""
        cfg += f" track={self.tracking.tracker}:{self.tracking.experiment}" if self.tracking else ""
        return redact(f"Job<{self.dataset!r}{labels} model={self.model_id!r}{cfg} {hp}>")
