"""Redaction: secrets never reach an error message, a log line, a repr, a plan or a model card.

One function, :func:`redact`, used by both sides: the client (every :class:`~sagefinetune.errors.SagefinetuneError`
message, ``say`` lines, reprs, plans, model cards) and the entry point (its log lines and the failure reason SageMaker
records). Standard library only: the entry point ships it beside ``train.py`` and imports nothing else.

What it masks:

- values that are secrets whatever they are called: Hugging Face tokens (``hf_`` and 20+ letters or digits), AWS
  access key ids (``AKIA``/``ASIA`` and 16 more), AWS secret access keys (40 base64 characters mixing upper case,
  lower case and digits), session tokens and other long base64 runs (100+ characters), ``Bearer``/``Basic``
  credentials, and the password in ``scheme://user:password@host``;
- any value under a name that says it is a secret (:func:`is_secret_name`: TOKEN, SECRET, PASSWORD, CREDENTIAL or
  KEY), written as ``NAME=value``, ``name='value'``, ``name: value``, ``'name': 'value'`` or ``"name": "value"``.

Names are kept (``HF_TOKEN=***``), so a message still says which setting was wrong. Ordinary names are not secrets:
``max_length``, ``key_phrase``, ``cache_tokens``, ``tokenizer``, ``pad_token``/``pad_token_id`` (special tokens),
``volume_kms_key`` (a KMS key id), ``monkey``. Placeholders (``token='hf_...'``, ``<your token>``, ``$HF_TOKEN``) are
left as they are, so fixes can still show them.

Example:
    >>> redact("environment must be a mapping; got ['HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz12']")
    "environment must be a mapping; got ['HF_TOKEN=***']"
    >>> redact("{'api_key': 'abc123', 'max_length': 128}")
    "{'api_key': '***', 'max_length': 128}"
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MASK", "redact", "redact_value", "is_secret_name", "RedactingFilter", "run_redacted"]

MASK = "***"

# ---- names -------------------------------------------------------------------------------------------------------
_PARTS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_ANYWHERE = ("secret", "password", "passwd", "credential")
_KEYS = ("key", "apikey", "accesskey", "secretkey", "privatekey", "signingkey", "masterkey", "authkey")
_NOT_SECRET_BEFORE_KEY = ("kms", "label", "sort", "partition", "primary", "foreign", "object", "cache", "s3", "public",
                          "hot", "dict")
_SPECIAL_TOKENS = ("pad", "eos", "bos", "unk", "sep", "cls", "mask", "start", "end", "special", "decoder", "max", "num")


def is_secret_name(name: str) -> bool:
    """Whether a setting, variable or key of this name holds a secret.

    Example:
        >>> [is_secret_name(n) for n in ("HF_TOKEN", "apiKey", "AWS_SECRET_ACCESS_KEY", "db_password")]
        [True, True, True, True]
        >>> [is_secret_name(n) for n in ("max_length", "key_phrase", "cache_tokens", "pad_token_id", "volume_kms_key")]
        [False, False, False, False, False]
    """
    parts = [p.lower() for p in _PARTS.split(str(name)) if p]
    if not parts:
        return False
    last, before = parts[-1], (parts[-2] if len(parts) > 1 else "")
    if last in ("error", "exception", "warning"):  # NoCredentialsError: the name of an error, not a setting
        return False
    if any(word in part for part in parts for word in _ANYWHERE):
        return True
    if last.endswith("token"):
        return not (last == "token" and before in _SPECIAL_TOKENS) and last.removesuffix("token") not in _SPECIAL_TOKENS
    return last in _KEYS and before not in _NOT_SECRET_BEFORE_KEY


# ---- values ------------------------------------------------------------------------------------------------------
_B64 = "A-Za-z0-9/+"
_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{20,}"), "hf_" + MASK),
    (re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), r"\1" + MASK),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+(@)"), r"\1" + MASK + r"\2"),
)
_BASE64_RUN = re.compile(rf"(?<![{_B64}=])(?:[{_B64}]{{40}}|[{_B64}]{{100,}}={{0,2}})(?![{_B64}=])")


def _mixed(text: str) -> bool:
    """Upper case, lower case and digits together: a key, not a word, a path or a hex digest."""
    return any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)


# ---- name=value, name: value, 'name': 'value' -------------------------------------------------------------------
# the value sits in a lookahead: a pair whose name is not a secret consumes only its name, so a pair inside its value
# (config_overrides={"api_key": ...}) is still found
_PAIR = re.compile(
    r"""(?P<q>['"]?)(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P=q)\s*(?:=|:)\s*"""
    r"""(?=(?P<value>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|\[[^\[\]\n]*\]|\{[^{}\n]*\}|[^\s,;'"()\[\]{}<>&]+))"""
)
_PLACEHOLDER = re.compile(r"""\A['"]?(?:|\.\.\.|…|[A-Za-z_]*\.\.\.|<[^<>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|None|null)['"]?\Z""")


def _mask_pairs(text: str) -> str:
    """Mask the value of every pair whose name is a secret's (the quotes around a value stay)."""
    spans: list[tuple[int, int, str]] = []
    for match in _PAIR.finditer(text):
        value = match.group("value")
        if spans and match.start() < spans[-1][1] or not is_secret_name(match.group("name")) \
                or _PLACEHOLDER.match(value):
            continue
        quote = value[0] if value[0] in "'\"" and len(value) > 1 else ""
        spans.append((match.start("value"), match.end("value"), f"{quote}{MASK}{quote}"))
    for start, end, masked in reversed(spans):
        text = text[:start] + masked + text[end:]
    return text


def redact(text: Any) -> str:
    """``text`` (made a string) with every secret masked as ``***``; the names stay, so the message stays useful."""
    out = text if isinstance(text, str) else str(text)
    if not out:
        return out
    for pattern, replacement in _VALUE_PATTERNS:
        out = pattern.sub(replacement, out)
    out = _BASE64_RUN.sub(lambda m: MASK if _mixed(m.group(0)) else m.group(0), out)
    return _mask_pairs(out)


def redact_value(value: Any) -> Any:
    """A copy of mappings, lists and strings with the secrets masked (values under secret names, secret values)."""
    if isinstance(value, Mapping):
        return {k: MASK if is_secret_name(str(k)) and value[k] not in (None, "") else redact_value(value[k])
                for k in value}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v) for v in value)
    if isinstance(value, str):
        return redact(value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (and its traceback text) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def _excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def run_redacted(main: Callable[[], Any], on_failure: Callable[[BaseException], None] | None = None) -> None:
    """Run a script's ``main``; a failure's traceback, or a ``SystemExit`` message, reaches stderr redacted.

    ``on_failure`` (the training script's failure file) sees the exception first.
    """
    sys.excepthook = _excepthook
    try:
        main()
    except BaseException as exc:
        if on_failure is not None:
            on_failure(exc)
        if isinstance(exc, SystemExit) and isinstance(exc.code, str):
            raise SystemExit(redact(exc.code)) from None
        raise
