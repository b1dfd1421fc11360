"""Predictions with label names from a trained model folder, in this process."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._deps import require
from .entrypoint.contract import SETTINGS_FILE
from .errors import ConfigError

__all__ = ["Predictor"]

TextInput = str | tuple[str, str]


class Predictor:
    """Batched predictions that carry class names, from a model folder written by a run.

    Long inputs are truncated to the model's training ``max_length``. Multi-label models return every label whose
    probability clears the threshold chosen on the validation split.

    Example:
        >>> Predictor(run.model_dir).predict(["a gripping, beautiful film"])  # doctest: +SKIP
        [{'label': 'positive', 'score': 0.98}]
    """

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32, device: str | int | None = None) -> None:
        require("transformers", "predict")
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise ConfigError(f"{model_dir} holds no model (config.json is missing). Fix: pass a run's model_dir.")
        settings_path = model_dir / SETTINGS_FILE
        self.settings: dict[str, Any] = json.loads(settings_path.read_text()) if settings_path.exists() else {}
        self.model_dir = model_dir
        self.batch_size = batch_size
        from transformers import pipeline

        self._pipe = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=device)
        self.multi_label = self._pipe.model.config.problem_type == "multi_label_classification"
        self.threshold = float(self.settings.get("threshold", 0.5))
        self.max_length = int(self.settings.get("max_length", 512))

    @property
    def labels(self) -> list[str]:
        cfg: Any = self._pipe.model.config
        return [cfg.id2label[i] for i in range(cfg.num_labels)]

    def predict(self, texts: Sequence[TextInput] | TextInput, *, all_scores: bool = False) -> list[Any]:
        """Classify texts (or ``(text, text_pair)`` tuples).

        Returns:
            single-label: ``[{"label": name, "score": p}]`` (``all_scores=True``: every class, best first);
            multi-label: ``[[{"label": name, "score": p}, ...]]`` with the labels above the threshold.
        """
        if isinstance(texts, (str, tuple)):
            texts = [texts]
        if not isinstance(texts, Sequence) or not texts:
            raise ConfigError(f"predict needs a non-empty list of texts; got {texts!r}.")
        inputs = [{"text": t[0], "text_pair": t[1]} if isinstance(t, tuple) else t for t in texts]
        bad = [t for t in inputs if not isinstance(t, (str, dict))]
        if bad:
            raise ConfigError(f"predict takes strings or (text, text_pair) tuples; got {bad[0]!r}.")
        kwargs: dict[str, Any] = {"batch_size": self.batch_size, "truncation": True, "max_length": self.max_length,
                                  "top_k": None}
        if self.multi_label:
            kwargs["function_to_apply"] = "sigmoid"
        outputs: list[Any] = self._pipe(inputs, **kwargs)  # type: ignore[arg-type]
        results: list[Any] = []
        for raw in outputs:
            scores = [{"label": s["label"], "score": float(s["score"])} for s in sorted(raw, key=lambda s: -s["score"])]
            if self.multi_label:
                results.append(scores if all_scores else [s for s in scores if s["score"] >= self.threshold])
            else:
                results.append(scores if all_scores else scores[0])
        return results

    __call__ = predict
