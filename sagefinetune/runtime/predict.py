"""Predictions with label names from a trained model folder, in this process: PyTorch weights or an ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagefinetune.core.checks import check_precision
from sagefinetune.core.inputs import Input, as_inputs, check_options
from sagefinetune.entrypoint import inference as handler
from sagefinetune.entrypoint.request_body import blank_inputs
from sagefinetune.errors import ConfigError
from sagefinetune.runtime.loading import ONNX_FILE, Runtime, load_runtime

__all__ = ["Predictor", "PROGRESS_INPUTS"]

PROGRESS_INPUTS = 1000  # a progress bar from this many inputs up (a few seconds or more of CPU work), on a terminal


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

    def predict(self, texts: Any, *, top_k: int | None = None, all_scores: bool = False,
                progress: bool | None = None) -> list[Any]:
        """Classify texts; for a model trained on sentence pairs, ``(text, text_pair)`` tuples.

        Takes what an endpoint takes, and answers as it answers (see :doc:`/serve-and-share`, "The JSON contract"):
        a text, or any ordered collection of texts (a list, a pandas Series, a numpy array, a datasets column
        ``ds["text"]``, a generator). For a pair model a tuple is always *one* pair: ``predict(("a premise",
        "a hypothesis"))`` answers one prediction, and several pairs go in a list, ``predict([(a, b), (c, d)])``. For
        any other model a tuple is refused, because it reads as a pair. An empty or whitespace-only text is refused
        (training refuses them too), with its index. An empty collection answers ``[]``.

        Args:
            top_k: the k best labels of each input, best first (a list per input).
            all_scores: every label of each input, best first (a list per input).
            progress: a progress bar on stderr; by default one shows for :data:`PROGRESS_INPUTS` inputs or more
                when stderr is a terminal.

        Returns:
            A list, one answer per input, in order (a single text: a list of one). An answer is the best label
            ``{"label": name, "score": p}``; with ``top_k`` or ``all_scores`` a list of them; for a multi-label
            model the labels above the threshold (a list).

        Example:
            >>> predictor.predict(df["text"])  # doctest: +SKIP
            [{'label': 'sports', 'score': 0.97}, {'label': 'business', 'score': 0.91}, ...]
            >>> predictor.predict("a new phone", top_k=2)  # doctest: +SKIP
            [[{'label': 'tech', 'score': 0.88}, {'label': 'business', 'score': 0.07}]]
        """
        parameters = check_options(top_k, all_scores)
        inputs = self._inputs(texts)
        if not inputs:
            return []
        runtime = self.runtime
        with _bar(len(inputs), progress) as bar:
            rows = runtime.probabilities(inputs, progress=bar.update)
        return [handler.answer(runtime.labels, row, parameters, self.multi_label, self.threshold) for row in rows]

    __call__ = predict

    @property
    def pairs(self) -> bool:
        """Whether the model was trained on sentence pairs (then a 2-tuple is one input)."""
        return bool(self.settings.get("text_pair"))

    def _inputs(self, texts: Any) -> list[Input]:
        """Runtime inputs, checked: texts, or pairs for a model trained on pairs; none of them empty."""
        inputs = as_inputs(texts, self.pairs)
        blank = blank_inputs(inputs)
        if blank:
            raise ConfigError(blank)
        return inputs


def _bar(total: int, progress: bool | None) -> Any:
    """A tqdm bar over ``total`` inputs on stderr, or a stand-in that shows nothing."""
    import sys
    from contextlib import nullcontext
    from types import SimpleNamespace

    show = progress if progress is not None else total >= PROGRESS_INPUTS and sys.stderr.isatty()
    if not show:
        return nullcontext(SimpleNamespace(update=lambda n: None))
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="predict", unit="text", dynamic_ncols=True, leave=False)


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
