"""The model card of a run: huggingface_hub's ModelCard, with the final metrics as ``model-index`` eval results.

The card says what the model is (base model, data, labels), how well it did (final metrics, a confusion matrix drawn
with matplotlib), what it took (hyperparameters, training time, instance, cost) and how to use it (a transformers
pipeline and sagefinetune's Predictor). Its facts come from the run: the plan when the run has one, else the run
folder's plan.json, else the SageMaker job's description; and the model folder (config, settings, metrics).

    >>> print(model_card(run, "me/bbc-minilm").data.to_yaml())  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.entrypoint.contract import SETTINGS_FILE
from sagefinetune.entrypoint.redaction import redact

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sagefinetune.run import TrainingRun

__all__ = ["RunFacts", "run_facts", "model_card", "card_from_facts", "card_body", "confusion_figure", "confusion_png"]

DEFAULT_ENDPOINT = "https://huggingface.co"

CONFUSION_FILE = "confusion_matrix.json"
#: final metric -> (model-index metric type, display name, averaging)
EVAL_METRICS = {
    "eval_accuracy": ("accuracy", "Accuracy", None),
    "eval_f1": ("f1", "F1 (macro)", "macro"),
    "eval_precision": ("precision", "Precision (macro)", "macro"),
    "eval_recall": ("recall", "Recall (macro)", "macro"),
    "eval_mcc": ("matthews_correlation", "MCC", None),
    "eval_f1_micro": ("f1", "F1 (micro)", "micro"),
    "eval_f1_macro": ("f1", "F1 (macro)", "macro"),
    "eval_precision_micro": ("precision", "Precision (micro)", "micro"),
    "eval_recall_micro": ("recall", "Recall (micro)", "micro"),
}
_HIDDEN_HP = {"labels", "label_mapping", "problem_type", "model_name_or_path", "text_column", "label_column",
              "text_pair_column"}


@dataclass(frozen=True)
class RunFacts:
    """What the card says about a run, gathered once."""

    name: str
    base_model: str
    dataset: str
    dataset_id: str | None
    labels: list[str]
    problem_type: str
    label_mapping: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    training_seconds: float | None = None
    where: str = ""
    cost: str = ""
    confusion: dict[str, Any] | None = None
    max_length: int | None = None
    threshold: float | None = None
    truncation: str = "head"


def _read_json(path: Path | None) -> Any:
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def _unquote(value: Any) -> str:
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            pass
    return text


def _record(run: TrainingRun) -> dict[str, Any]:
    """The plan as a dict: the run's plan, else its folder's plan.json, else built from the SageMaker description."""
    if run.plan is not None:
        return run.plan.to_dict()
    saved = _read_json(run.run_dir / "plan.json" if run.run_dir else None)
    if saved:
        return dict(saved)
    d = run.description or {}
    resources = d.get("ResourceConfig") or {}
    channels = [f"{c.get('ChannelName')}={(c.get('DataSource') or {}).get('S3DataSource', {}).get('S3Uri', '?')}"
                for c in d.get("InputDataConfig") or []]
    hp = {k: _unquote(v) for k, v in (d.get("HyperParameters") or {}).items() if not k.startswith("sagemaker_")}
    return {"backend": run.backend, "instance": resources.get("InstanceType", "?"),
            "nodes": int(resources.get("InstanceCount") or 1), "processes_per_node": 1,
            "model": hp.get("model_name_or_path", ""), "dataset": "S3 channels " + ", ".join(channels) if channels
            else "not recorded", "hyperparameters": hp, "sagemaker": None}


def _where(run: TrainingRun, record: dict[str, Any]) -> str:
    if run.backend == "local" or record.get("backend") == "local":
        return f"this machine (a local run, {record.get('processes_per_node', 1)} process(es))"
    spot = " (spot)" if (record.get("sagemaker") or {}).get("spot") else ""
    return f"SageMaker {record.get('instance', '?')} x {record.get('nodes', 1)} node(s){spot}"


def run_facts(run: TrainingRun, model_dir: Path | None = None) -> RunFacts:
    """The card's facts about ``run`` (``model_dir``: its model folder, default ``run.model_dir``)."""
    model_dir = Path(model_dir or run.model_dir)
    record = _record(run)
    settings = _read_json(model_dir / SETTINGS_FILE) or {}
    config = _read_json(model_dir / "config.json") or {}
    id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
    labels = list(settings.get("labels") or [id2label[i] for i in sorted(id2label)])
    hp = {k: str(v) for k, v in (record.get("hyperparameters") or {}).items()}
    mapping = json.loads(hp["label_mapping"]) if hp.get("label_mapping") else {}
    # metrics.json is what the entry point measured at the end; SageMaker's metric list may hold less (or other things)
    metrics = {**(run.metrics or {}), **(_read_json(model_dir / "metrics.json") or {})}
    seconds = run.training_seconds if run.training_seconds is not None else metrics.get("train_runtime")
    dataset = str(record.get("dataset") or "not recorded")
    hub = re.match(r"Dataset<hub\('([^']+)'", dataset)
    output = run.run_dir / "output" / "data" / CONFUSION_FILE if run.run_dir else None
    return RunFacts(
        name=run.name,
        base_model=str(hp.get("model_name_or_path") or record.get("model") or config.get("_name_or_path") or "not recorded"),
        dataset=dataset, dataset_id=hub.group(1) if hub else None, labels=labels,
        problem_type=str(settings.get("problem_type") or config.get("problem_type") or "single_label_classification"),
        label_mapping={str(k): str(v) for k, v in mapping.items()},
        hyperparameters={k: v for k, v in hp.items() if k not in _HIDDEN_HP}, metrics=metrics,
        training_seconds=float(seconds) if seconds is not None else None, where=_where(run, record),
        cost=str(run.cost), confusion=_read_json(model_dir / CONFUSION_FILE) or _read_json(output),
        max_length=settings.get("max_length"), threshold=settings.get("threshold"),
        truncation=str(settings.get("truncation") or "head"),
    )


# ---- the card -------------------------------------------------------------------------------------------
def _is_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name)) and not Path(name).exists()


def _eval_results(facts: RunFacts) -> list[Any]:
    from huggingface_hub import EvalResult

    dataset_type = facts.dataset_id or "custom"
    return [EvalResult(task_type="text-classification", task_name="Text Classification", dataset_type=dataset_type,
                       dataset_name=facts.dataset[:120], dataset_split="test", metric_type=kind, metric_name=shown,
                       metric_value=round(float(facts.metrics[key]), 4), metric_config=config)
            for key, (kind, shown, config) in EVAL_METRICS.items() if key in facts.metrics]


def model_card(run: TrainingRun, repo_id: str, *, endpoint: str = DEFAULT_ENDPOINT,
               model_dir: Path | None = None) -> Any:
    """The :class:`huggingface_hub.ModelCard` that ``push_to_hub`` writes as the repository's README.md.

    Example:
        >>> card = model_card(run, "me/bbc-minilm")  # doctest: +SKIP
        >>> card.data.eval_results[0].metric_type, card.data.eval_results[0].metric_value  # doctest: +SKIP
        ('accuracy', 0.955)
    """
    import importlib.util

    facts = run_facts(run, model_dir)
    picture = facts.confusion is not None and importlib.util.find_spec("matplotlib") is not None
    return card_from_facts(facts, repo_id, endpoint=endpoint, picture=picture)


def card_from_facts(facts: RunFacts, repo_id: str, *, endpoint: str = DEFAULT_ENDPOINT, picture: bool = True) -> Any:
    """The card of ``facts``; ``picture``: it shows ``confusion_matrix.png`` (pushed beside it)."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        base_model=facts.base_model if _is_hub_id(facts.base_model) else None,
        datasets=[facts.dataset_id] if facts.dataset_id else None,
        library_name="transformers", pipeline_tag="text-classification", tags=["text-classification", "sagefinetune"],
        metrics=sorted({v[0] for k, v in EVAL_METRICS.items() if k in facts.metrics}) or None,
        model_name=repo_id.split("/")[-1], eval_results=_eval_results(facts) or None,
    )
    # the card is published: no secret (a token in a config override, a path, a tag) may reach it
    return ModelCard(redact(f"---\n{data.to_yaml()}\n---\n\n{card_body(facts, repo_id, endpoint, picture)}"))


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows])


def _labels_section(facts: RunFacts) -> str:
    raw: dict[str, list[str]] = {}
    for value, name in facts.label_mapping.items():
        if value != name:
            raw.setdefault(name, []).append(value)
    rows = [[i, name] + ([", ".join(raw.get(name, [])) or "-"] if raw else []) for i, name in enumerate(facts.labels)]
    header = ["id", "label"] + (["raw values in the data"] if raw else [])
    kind = (f"multi-label: every label whose probability is at least {facts.threshold} (chosen on the validation "
            "split)" if facts.problem_type == "multi_label_classification" else "single-label: one class per text")
    return f"## Labels\n\n{len(facts.labels)} classes, {kind}. `config.json` holds them as `id2label`.\n\n" + \
        _table(header, rows)


def _evaluation_section(facts: RunFacts, picture: bool) -> str:
    rows = [[shown, f"{facts.metrics[key]:.4f}"] for key, (_, shown, _) in EVAL_METRICS.items() if key in facts.metrics]
    if "eval_loss" in facts.metrics:
        rows.append(["loss", f"{facts.metrics['eval_loss']:.4f}"])
    text = "## Evaluation\n\nOn the test split, after training (`metrics.json` has every value).\n\n"
    text += _table(["metric", "value"], rows) if rows else "No evaluation metrics were recorded."
    matrix = (facts.confusion or {}).get("matrix")
    if picture:
        text += "\n\n![Confusion matrix of the test split](confusion_matrix.png)"
    if matrix and len(matrix) <= 20:
        body = _table(["true \\ predicted"] + facts.labels, [[n] + list(r) for n, r in zip(facts.labels, matrix)])
        text += f"\n\n<details><summary>Confusion matrix as a table</summary>\n\n{body}\n\n</details>"
    return text


def _training_section(facts: RunFacts) -> str:
    seconds = f"{facts.training_seconds:.0f} s" if facts.training_seconds is not None else "not recorded"
    text = (f"## Training\n\n- **Base model:** `{facts.base_model}`\n- **Data:** `{facts.dataset}`\n"
            f"- **Where:** {facts.where}\n- **Training time:** {seconds}\n- **Cost:** {facts.cost}\n"
            f"- **Run:** `{facts.name}`, trained with sagefinetune")
    if facts.hyperparameters:
        text += "\n\n" + _table(["hyperparameter", "value"], [[f"`{k}`", v] for k, v in facts.hyperparameters.items()])
    return text


def _usage_section(facts: RunFacts, repo_id: str, endpoint: str) -> str:
    length = facts.max_length or 512
    multi = facts.problem_type == "multi_label_classification"
    extra = ', function_to_apply="sigmoid"' if multi else ""
    note = (f"\n\nThis repository is on {endpoint}: set `HF_ENDPOINT={endpoint}` before importing transformers."
            if endpoint.rstrip("/") != DEFAULT_ENDPOINT else "")
    if facts.truncation == "head+tail":
        note += (f"\n\nTrained on the first quarter and the last three quarters of the {length} tokens a longer text "
                 "is cut to (`truncation=\"head+tail\"`); the pipeline keeps the first tokens only, so it scores long "
                 "texts differently. sagefinetune's `Predictor` below cuts them as training did.")
    return (f"## How to use\n\nWith transformers (a private repository needs `hf auth login` first):{note}\n\n"
            f"```python\nfrom transformers import pipeline\n\n"
            f'classifier = pipeline("text-classification", model="{repo_id}")\n'
            f'classifier(["Replace with your text"], truncation=True, max_length={length}, top_k=None{extra})\n```\n\n'
            "With sagefinetune's `Predictor` (label names, truncation to the training length"
            f"{', the saved threshold' if multi else ''}, batching):\n\n"
            f"```python\nfrom huggingface_hub import snapshot_download\nimport sagefinetune as sft\n\n"
            f'predictor = sft.Predictor(snapshot_download("{repo_id}"))\n'
            f'predictor.predict(["Replace with your text"])\n```')


def card_body(facts: RunFacts, repo_id: str, endpoint: str = DEFAULT_ENDPOINT, picture: bool = True) -> str:
    """The card's markdown below the metadata."""
    kind = "multi-label" if facts.problem_type == "multi_label_classification" else f"{len(facts.labels)}-class"
    intro = (f"# {repo_id.split('/')[-1]}\n\nA {kind} text classifier fine-tuned from "
             + (f"[`{facts.base_model}`]({DEFAULT_ENDPOINT}/{facts.base_model})" if _is_hub_id(facts.base_model)
                else f"`{facts.base_model}`")
             + f" with sagefinetune. Classes: {', '.join(facts.labels)}.")
    sections = [intro, _labels_section(facts), _evaluation_section(facts, picture), _training_section(facts),
                _usage_section(facts, repo_id, endpoint)]
    return "\n\n".join(sections) + "\n"


# ---- the confusion-matrix picture -----------------------------------------------------------------------
def confusion_figure(confusion: dict[str, Any]) -> Figure:
    """A heatmap of a run's ``confusion_matrix.json``: counts in the cells, colour by share of the true class.

    Multi-label runs (``per_label_confusion``) get one row per label with TN, FP, FN, TP.
    """
    import numpy as np
    from matplotlib.figure import Figure

    labels = list(confusion["labels"])
    if "matrix" in confusion:
        counts = np.asarray(confusion["matrix"], dtype=float)
        columns, xlabel = labels, "predicted"
    else:
        per = confusion["per_label_confusion"]
        counts = np.asarray([np.asarray(per[n]).ravel() for n in labels], dtype=float)
        columns, xlabel = ["TN", "FP", "FN", "TP"], "outcome"
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * max(len(labels), len(columns)) + 2)
    fig = Figure(figsize=(size, size * 0.85), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true")
    if counts.size <= 400:
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    return fig


def confusion_png(confusion: dict[str, Any] | None) -> bytes | None:
    """The confusion-matrix picture as PNG bytes; ``None`` without a matrix, or (with a warning) without matplotlib."""
    import importlib.util
    import warnings

    if confusion is None:
        return None
    if importlib.util.find_spec("matplotlib") is None:
        warnings.warn("matplotlib is not installed, so the model card has the confusion matrix as a table only. "
                      "Fix: pip install 'sagefinetune[plot]'.", stacklevel=3)
        return None
    buffer = io.BytesIO()
    confusion_figure(confusion).savefig(buffer, format="png")
    return buffer.getvalue()
