"""Predictions with label names from a trained model folder, in this process: PyTorch weights or an ONNX export."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sagefinetune.core.checks import check_precision
from sagefinetune.errors import ConfigError
from sagefinetune.runtime.loading import ONNX_FILE, Runtime, load_runtime

__all__ = ["Predictor"]

TextInput = str | tuple[str, str]


class Predictor:
    """Batched predictions that carry class names, from a model folder written by a run.

    Long inputs are cut to the model's training ``max_length`` the way training cut them (``truncation``: ``"head"``
    or ``"head+tail"``, from the folder's settings). Multi-label models return every label whose
    probability clears the threshold chosen on the validation split. A folder written by
    :meth:`TrainingRun.export <sagefinetune.TrainingRun.export>` (``model.onnx``) runs on ONNX Runtime, with the same
    answers in the same JSON; ``predictor.runtime.name`` says which (``"pytorch"`` or ``"onnx"``).

    ``precision`` (PyTorch models): ``"auto"`` runs the model in bf16 where the device computes bf16 natively (Ampere
    and newer GPUs, CPUs with AVX512-BF16 or AMX, Arm CPUs with BF16) and in fp32 elsewhere; ``"fp32"`` always in fp32
    (scores move by a few thousandths at most between the two); ``"bf16"`` where the device has it. The local
    endpoint and the serving handler choose the same way.

    Example:
        >>> Predictor(run.model_dir).predict(["a gripping, beautiful film"])  # doctest: +SKIP
        [{'label': 'positive', 'score': 0.98}]
        >>> Predictor(run.export("onnx", quantize="int8").path).predict(["a gripping, beautiful film"])  # doctest: +SKIP
        [{'label': 'positive', 'score': 0.97}]
    """

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32, device: str | int | None = None,
                 threads: int | None = None, precision: str = "auto") -> None:
        model_dir = check_model_dir(model_dir)
        check_precision(precision)
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.runtime: Runtime = load_runtime(model_dir, batch_size=batch_size, device=device, threads=threads,
                                             precision=precision)
        self.settings = self.runtime.settings
        self.multi_label = self.runtime.multi_label
        self.threshold = self.runtime.threshold
        self.max_length = self.runtime.max_length
        self.truncation = self.runtime.truncation

    @property
    def labels(self) -> list[str]:
        return list(self.runtime.labels)

    def predict(self, texts: Sequence[TextInput] | TextInput, *, all_scores: bool = False) -> list[Any]:
        """Classify texts; for a model trained on sentence pairs, ``(text, text_pair)`` tuples.

        For a pair model a tuple is always *one* pair: ``predict(("a premise", "a hypothesis"))`` answers one
        prediction, and several pairs go in a list, ``predict([(a, b), (c, d)])``. For any other model a tuple is
        refused, because it reads as a pair: pass several texts as a list, ``predict(["a text", "another"])``.

        Returns:
            single-label: ``[{"label": name, "score": p}]`` (``all_scores=True``: every class, best first);
            multi-label: ``[[{"label": name, "score": p}, ...]]`` with the labels above the threshold.
        """
        inputs = self._inputs(texts)
        results: list[Any] = []
        labels = self.runtime.labels
        for row in self.runtime.probabilities(inputs):
            ranked = sorted(range(len(labels)), key=lambda j: -float(row[j]))
            scores: list[dict[str, Any]] = [{"label": labels[j], "score": float(row[j])} for j in ranked]
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
        """Runtime inputs. A tuple is one sentence pair for a model trained on pairs, and refused for any other."""
        if isinstance(texts, tuple) and not self.pairs:
            raise ConfigError(
                f"this model was not trained on sentence pairs, and a tuple reads as one (text, text_pair) pair; got "
                f"{_short(texts)}. Fix: predict({_short(list(texts))}) for several texts (a list), or train on pairs "
                "with .columns(text_pair=...) to classify pairs.")
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
            return (item[0], item[1])
        if not isinstance(item, str):
            raise ConfigError(f"this model takes one text per input; got {item!r}. Fix: predict(['a text', ...]) "
                              "(sentence pairs need a model trained with .columns(text_pair=...)).")
        return item


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...]"


def check_model_dir(model_dir: str | Path) -> Path:
    """A folder with a model config, weights and a tokenizer, or an error that says what is missing."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ConfigError(f"{str(model_dir)!r} is not a folder. Fix: pass a run's model_dir (run.model_dir).")
    names = {p.name for p in folder.iterdir()}
    wanted = {
        "config.json": {"config.json"},
        "weights (model.safetensors or model.onnx)": {"model.safetensors", "pytorch_model.bin",
                                                      "model.safetensors.index.json", ONNX_FILE},
        "a tokenizer (tokenizer.json)": {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model"},
    }
    missing = [what for what, files in wanted.items() if not names & files]
    if missing:
        raise ConfigError(f"{folder} holds no complete model: {', '.join(missing)} missing. Fix: pass the model_dir "
                          "of a finished run, or a folder written by save_pretrained (model and tokenizer).")
    return folder
