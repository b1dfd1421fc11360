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
        model_dir = check_model_dir(model_dir)
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
        """Classify texts; for a model trained on sentence pairs, ``(text, text_pair)`` tuples.

        Returns:
            single-label: ``[{"label": name, "score": p}]`` (``all_scores=True``: every class, best first);
            multi-label: ``[[{"label": name, "score": p}, ...]]`` with the labels above the threshold.
        """
        inputs = self._inputs(texts)
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

    @property
    def pairs(self) -> bool:
        """Whether the model was trained on sentence pairs (then a 2-tuple is one input)."""
        return bool(self.settings.get("text_pair"))

    def _inputs(self, texts: Any) -> list[Any]:
        """Pipeline inputs. A tuple is a sentence pair only for a model trained on pairs; else it is a sequence."""
        if isinstance(texts, str) or (self.pairs and isinstance(texts, tuple)):
            texts = [texts]
        if not isinstance(texts, Sequence) or isinstance(texts, bytes) or not texts:
            raise ConfigError(f"predict needs a non-empty list of texts; got {texts!r}. Fix: predict(['a text']).")
        return [self._one(t) for t in texts]

    def _one(self, item: Any) -> Any:
        if self.pairs:
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item)):
                raise ConfigError(f"this model was trained on sentence pairs: each input is a (text, text_pair) tuple; "
                                  f"got {item!r}. Fix: predict([('first text', 'second text')]).")
            return {"text": item[0], "text_pair": item[1]}
        if not isinstance(item, str):
            raise ConfigError(f"this model takes one text per input; got {item!r}. Fix: predict(['a text', ...]) "
                              "(sentence pairs need a model trained with .columns(text_pair=...)).")
        return item


def check_model_dir(model_dir: str | Path) -> Path:
    """A folder with a model config, weights and a tokenizer, or an error that says what is missing."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ConfigError(f"{str(model_dir)!r} is not a folder. Fix: pass a run's model_dir (run.model_dir).")
    names = {p.name for p in folder.iterdir()}
    wanted = {
        "config.json": {"config.json"},
        "weights (model.safetensors)": {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"},
        "a tokenizer (tokenizer.json)": {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model"},
    }
    missing = [what for what, files in wanted.items() if not names & files]
    if missing:
        raise ConfigError(f"{folder} holds no complete model: {', '.join(missing)} missing. Fix: pass the model_dir "
                          "of a finished run, or a folder written by save_pretrained (model and tokenizer).")
    return folder
