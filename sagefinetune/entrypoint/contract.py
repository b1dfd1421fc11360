"""What the library and the entry point agree on. Standard library only: this file ships with train.py.

- HYPERPARAMETERS: every hyperparameter the entry point reads, with its type and default.
- parse_hyperparameters(): SageMaker passes hyperparameters as strings (``--epochs 3``, ``"true"``,
  ``"2e-05"``); this turns them back into typed values.
- Paths: SM_CHANNEL_*, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, the checkpoint directory.
- The metric line format, and the regex a SageMaker metric definition uses to read it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CHANNELS = ("train", "validation", "test")
DATA_FILE = "data.parquet"  # how the library writes channels; the entry point also reads JSON Lines and CSV
SETTINGS_FILE = "sagefinetune.json"  # written into the model dir: labels, problem type, threshold, max length, truncation


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off", ""):
        return False
    raise ValueError(f"expected a boolean (true/false); got {value!r}")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer; got {value!r}")
    if isinstance(value, int):
        return value
    number = float(str(value).strip())
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"expected an integer; got {value!r}")
    return int(number)


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number; got {value!r}")
    number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number; got {value!r}")
    return number


def parse_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def label_key(value: Any) -> str:
    """How a raw label value is written as a key of the label_mapping hyperparameter: 5, 5.0 and "5" are "5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_str(value: Any) -> str:
    return str(value)


def parse_class_weights(value: Any) -> str | dict[str, float] | None:
    """``"balanced"``, ``{"class name": weight > 0, ...}`` (JSON as it travels), or None (""): every class weighs 1."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("balanced", "") or text.lower() in ("none", "null"):
            return text if text == "balanced" else None
        if not text.startswith("{"):
            raise ValueError(f"expected 'balanced' or a JSON object of class name -> weight; got {value!r}")
        value = json.loads(text)
    if value is None or (isinstance(value, dict) and value):
        weights = {str(k): parse_float(v) for k, v in (value or {}).items()}
        if all(w > 0 for w in weights.values()):
            return weights or None
    raise ValueError(f"expected 'balanced' or a mapping of class name -> weight > 0; got {value!r}")


# ---- how values travel ----------------------------------------------------------------------------------------
# SageMaker's container driver (sagemaker.train container_drivers: environment.py) writes every hyperparameter into a
# shell file as ``export SM_HP_<NAME>='<value>'`` and sources it, with no quoting: a ``'`` in a value (a class name
# such as "children's books", a column name) ends the string and kills the job. So ``'`` travels as %27, and ``%``
# as %25 to keep the encoding reversible; every other character is left as it is.
_ENCODE = {"%": "%25", "'": "%27"}
_DECODE = re.compile(r"%(25|27)")


def encode_value(text: str) -> str:
    """A hyperparameter value as it is sent: ``'`` and ``%`` percent-encoded (see above)."""
    return "".join(_ENCODE.get(c, c) for c in text)


def decode_value(text: str) -> str:
    """The inverse of :func:`encode_value`."""
    return _DECODE.sub(lambda m: "%" if m.group(1) == "25" else "'", text)


def decode_sent(value: Any) -> Any:
    """:func:`decode_value` on a hyperparameter as the script receives it: a string, or (from ``SM_HPS``, which
    SageMaker's driver JSON-decodes) a list or dict whose strings are still encoded.

    >>> decode_sent({"it%27s": ["children%27s books", 3]})
    {"it's": ["children's books", 3]}
    """
    if isinstance(value, str):
        return decode_value(value)
    if isinstance(value, list):
        return [decode_sent(v) for v in value]
    if isinstance(value, dict):
        return {decode_sent(k): decode_sent(v) for k, v in value.items()}
    return value


def _safe_deserialize(data: Any) -> Any:
    """The driver's ``safe_deserialize``: JSON-decode a string when it is JSON, else keep it."""
    if not isinstance(data, str):
        return data
    try:
        return json.loads(data)
    except ValueError:
        return data


def _safe_serialize(data: Any) -> str:
    """The driver's ``safe_serialize``: strings as they are, everything else as JSON."""
    return data if isinstance(data, str) else json.dumps(data)


def driver_round_trip(value: str) -> str:
    """The command-line argument SageMaker's driver hands the script for a hyperparameter sent as ``value``.

    environment.py JSON-decodes each value into SM_HPS; the basic and torchrun drivers decode it once more and
    re-encode it (``hyperparameters_to_cli_args``). A string that reads as JSON of another type comes out changed:
    a column named ``1e5`` arrives as ``100000.0``.
    """
    return _safe_serialize(_safe_deserialize(_safe_deserialize(value)))


#: What early_stopping may watch (the names of metrics/classification.py): see objective.early_stopping_metric.
EARLY_STOPPING_METRICS = ("auto", "eval_loss", "eval_f1", "eval_accuracy", "eval_precision", "eval_recall", "eval_mcc",
                          "eval_f1_micro", "eval_f1_macro", "eval_precision_micro", "eval_recall_micro",
                          "eval_subset_accuracy")


@dataclass(frozen=True)
class Param:
    parse: Callable[[Any], Any]
    default: Any
    help: str
    check: Callable[[Any], bool] | None = None
    rule: str = ""


HYPERPARAMETERS: dict[str, Param] = {
    "model_name_or_path": Param(parse_str, DEFAULT_MODEL, "Hub id or local folder of the model"),
    "config_overrides": Param(parse_json, {}, "model config fields to override, as JSON"),
    "reinitialize": Param(parse_bool, False, "accept config overrides that discard pretrained weights (Job.model)"),
    "labels": Param(parse_json, None, "class names in id order, as JSON"),
    "problem_type": Param(parse_str, "single_label_classification", "single_ or multi_label_classification",
                          lambda v: v in ("single_label_classification", "multi_label_classification"),
                          "single_label_classification or multi_label_classification"),
    "label_mapping": Param(parse_json, {}, "raw label value (as text) -> class name, for files whose labels are raw"),
    "text_column": Param(parse_str, "text", "the text column in the channel files"),
    "text_pair_column": Param(parse_str, "", "the second text column for sentence pairs ('' for none)"),
    "label_column": Param(parse_str, "label", "the label column in the channel files"),
    "epochs": Param(parse_float, 3.0, "training epochs", lambda v: 0 < v <= 10_000, "in (0, 10000]"),
    "max_steps": Param(parse_int, 0, "stop after this many optimizer steps, whatever the data size (0: epochs decide)",
                       lambda v: v >= 0, ">= 0"),
    "batch_size": Param(parse_int, 32, "per-device training batch size", lambda v: v >= 1, ">= 1"),
    "eval_batch_size": Param(parse_int, 64, "per-device evaluation batch size", lambda v: v >= 1, ">= 1"),
    "learning_rate": Param(parse_float, 5e-5, "peak learning rate", lambda v: 0 < v < 1, "in (0, 1)"),
    "weight_decay": Param(parse_float, 0.01, "AdamW weight decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    "warmup": Param(parse_float, 0.06, "share of steps spent warming up", lambda v: 0 <= v < 1, "in [0, 1)"),
    "gradient_accumulation_steps": Param(parse_int, 1, "steps to accumulate before an update", lambda v: v >= 1, ">= 1"),
    "max_length": Param(parse_int, 256, "truncate inputs to this many tokens (batches are padded dynamically); "
                        "sagefinetune's 'auto' chooses it from the train rows' token lengths (see below)",
                        lambda v: 8 <= v <= 8192, "in [8, 8192]"),
    "truncation": Param(parse_str, "head", "which tokens a longer input keeps: head (the first) or head+tail (the "
                        "first quarter and the last three quarters of max_length)",
                        lambda v: v in ("head", "head+tail"), "head or head+tail"),
    "pad_to_max_length": Param(parse_bool, False, "pad every input to max_length (the slow notebook recipe)"),
    "group_by_length": Param(parse_bool, True, "batch inputs of similar length together"),
    "precision": Param(parse_str, "auto", "auto (bf16, else fp16 on GPU; fp32 on CPU), fp32, fp16 or bf16",
                       lambda v: v in ("auto", "fp32", "fp16", "bf16"), "one of auto, fp32, fp16, bf16"),
    "seed": Param(parse_int, 42, "random seed", lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    "save_steps": Param(parse_int, 0, "checkpoint every N steps (0: every epoch)", lambda v: v >= 0, ">= 0"),
    "save_total_limit": Param(parse_int, 2, "checkpoints kept", lambda v: v >= 1, ">= 1"),
    "logging_steps": Param(parse_int, 0, "log every N steps (0: about 20 times a run, at most every 50 steps)",
                           lambda v: v >= 0, ">= 0"),
    "eval_each_epoch": Param(parse_bool, True, "evaluate after every epoch"),
    "torch_compile": Param(parse_bool, False, "compile the model with torch.compile (GPU runs of some length)"),
    "cache_tokens": Param(parse_bool, True, "keep the tokenised data for resumed runs and other jobs on the same data"),
    "class_weights": Param(parse_class_weights, None, "weight the loss by class: 'balanced' (rows / (classes x rows "
                           "of the class) in train; multi-label: negatives / positives of each label, as pos_weight) "
                           "or {\"class name\": weight, ...} (classes left out weigh 1)"),
    "early_stopping": Param(parse_int, 0, "stop after this many evaluations without a better early_stopping_metric "
                            "on the validation split; the best checkpoint is the model (0: off)", lambda v: v >= 0, ">= 0"),
    "early_stopping_metric": Param(parse_str, "auto", "what early_stopping watches: auto (eval_f1; eval_f1_micro for "
                                   "multi-label) or another evaluation metric such as eval_loss",
                                   lambda v: v in EARLY_STOPPING_METRICS, "auto or an eval_* metric of the run"),
}


def parse_hyperparameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Typed hyperparameters with defaults filled in. Raises ValueError naming the bad one."""
    unknown = sorted(set(raw) - set(HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; known: {sorted(HYPERPARAMETERS)}")
    out: dict[str, Any] = {}
    for name, param in HYPERPARAMETERS.items():
        if name not in raw:
            out[name] = param.default
            continue
        sent = raw[name]
        try:
            value = param.parse(decode_sent(sent))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"hyperparameter {name}={raw[name]!r}: {exc}") from None
        if param.check is not None and not param.check(value):
            raise ValueError(f"hyperparameter {name}={raw[name]!r} must be {param.rule}")
        out[name] = value
    return out


def render_hyperparameter(value: Any) -> str:
    """How a value is written into SageMaker's string-only hyperparameters (encoded: see :func:`encode_value`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return encode_value(json.dumps(value, separators=(",", ":"), sort_keys=isinstance(value, dict)))
    return encode_value(str(value))


#: SageMaker's tuner adds this hyperparameter to every training job it launches.
TUNING_OBJECTIVE_KEY = "_tuning_objective_metric"


def _config_hyperparameters() -> dict[str, Any]:
    config = os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")
    path = os.path.join(config, "hyperparameters.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as fh:
        return dict(json.load(fh))


def is_tuning_trial() -> bool:
    """True in a training job launched by a SageMaker hyperparameter tuning job."""
    return TUNING_OBJECTIVE_KEY in _config_hyperparameters()


def read_raw_hyperparameters(argv: list[str]) -> dict[str, str]:
    """Hyperparameters from SageMaker's config file, SM_HPS, then ``--key value`` arguments (later wins).

    In a tuning job's trial the config file wins: the tuner's jobs run through the container's legacy driver, which
    passes lists and dicts as Python reprs on the command line. SageMaker's own keys (``sagemaker_*``, ``_*``) are
    dropped.
    """
    raw: dict[str, Any] = {}
    file_values = _config_hyperparameters()
    raw.update(file_values)
    if os.environ.get("SM_HPS"):
        raw.update(json.loads(os.environ["SM_HPS"]))
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}; hyperparameters come as --name value")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ValueError(f"hyperparameter {arg} has no value")
            key, value = arg[2:], argv[i + 1]
            i += 2
        raw[key.replace("-", "_")] = value
    # SageMaker and the SDK may JSON-encode strings ('"abc"'); undo that for plain strings
    for key, value in list(raw.items()):
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                raw[key] = json.loads(value)
            except ValueError:
                pass
    if TUNING_OBJECTIVE_KEY in file_values:
        raw.update(file_values)
    return {k: v for k, v in raw.items() if not (k.startswith("_") or k.startswith("sagemaker_"))}


@dataclass(frozen=True)
class Paths:
    model_dir: str
    output_dir: str
    checkpoint_dir: str
    channels: dict[str, str]
    num_gpus: int


def paths() -> Paths:
    """Where SageMaker (or the local backend, which mimics it) puts things."""
    env = os.environ
    base = env.get("SM_INPUT_DIR", "/opt/ml/input")
    channels = {}
    for name in CHANNELS:
        value = env.get(f"SM_CHANNEL_{name.upper()}") or os.path.join(base, "data", name)
        if os.path.isdir(value):
            channels[name] = value
    checkpoint_dir = env.get("SFT_CHECKPOINT_DIR", "/opt/ml/checkpoints")
    if env.get("TRAINING_JOB_NAME") and is_tuning_trial():
        # a tuning job's trials share one checkpoint URI: each keeps to its own folder, so a spot restart of a trial
        # resumes that trial, never another one
        checkpoint_dir = os.path.join(checkpoint_dir, env["TRAINING_JOB_NAME"])
    return Paths(
        model_dir=env.get("SM_MODEL_DIR", "/opt/ml/model"),
        output_dir=env.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"),
        checkpoint_dir=checkpoint_dir,
        channels=channels,
        num_gpus=int(env.get("SM_NUM_GPUS", "0") or 0),
    )


# ---- metric lines ------------------------------------------------------------------------------------
METRIC_PREFIX = "[sagefinetune] metric"
PROGRESS_PREFIX = "[sagefinetune] progress"
NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"


def format_number(value: float) -> str:
    """Shortest exact form: 2.4e-05, 0.955, 12.0 (repr round-trips floats)."""
    return repr(float(value))


def metric_line(name: str, value: float, step: int, epoch: float | None) -> str:
    epoch_part = f" epoch={format_number(epoch)}" if epoch is not None else ""
    return f"{METRIC_PREFIX} name={name} value={format_number(value)} step={step}{epoch_part}"


def metric_regex(name: str) -> str:
    """The regex a SageMaker metric definition uses to read ``name`` from the job's log."""
    return re.escape(f"{METRIC_PREFIX} name={name} value=") + f"({NUMBER})"


METRIC_LINE = re.compile(
    re.escape(METRIC_PREFIX) + rf" name=(?P<name>\S+) value=(?P<value>{NUMBER}|nan|inf|-inf) step=(?P<step>\d+)"
    rf"(?: epoch=(?P<epoch>{NUMBER}))?"
)
PROGRESS_LINE = re.compile(re.escape(PROGRESS_PREFIX) + r" step=(?P<step>\d+) total=(?P<total>\d+)")


def progress_line(step: int, total: int) -> str:
    return f"{PROGRESS_PREFIX} step={step} total={total}"


# ---- label counts: what the diagnosis compares the model with (the majority class, imbalance) ------------------------
LABEL_COUNTS_PREFIX = "[sagefinetune] label counts"
LABEL_COUNTS_LINE = re.compile(re.escape(LABEL_COUNTS_PREFIX) + r" split=(?P<split>\S+) (?P<counts>\{.*\})")


def label_counts_line(split: str, counts: dict[str, int]) -> str:
    """``[sagefinetune] label counts split=test {"neg": 40, "pos": 60}``: rows per class (positives per label if
    multi-label)."""
    return f"{LABEL_COUNTS_PREFIX} split={split} {json.dumps(counts)}"
