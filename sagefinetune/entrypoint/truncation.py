"""How a text longer than ``max_length`` tokens is cut: one rule for training, evaluation, prediction and serving.

- ``head`` (the default): the first tokens, by the tokenizer's own truncation (longest first for a pair).
- ``head+tail``: the first quarter and the last three quarters of the tokens that fit, the middle removed. Sun et
  al. 2019 ("How to Fine-Tune BERT for Text Classification", IMDb) found head 128 + tail 382 of BERT's 512 the best
  of the truncations they tried: reviews say what they thought at the end. With 512 tokens and BERT's two special
  tokens this keeps exactly that split.

The special tokens stay where the tokenizer put them ([CLS] ... [SEP]); only text tokens are removed. In a sentence
pair the two texts share the room as the tokenizer's longest-first truncation shares it (the longer text gives up
tokens until both are as long, then both give), and each text keeps its own head and tail.

The run records its truncation in the model folder's ``sagefinetune.json`` (``"truncation"``, beside
``"max_length"``), so the Predictor, the local endpoint and the SageMaker handler cut inputs the way training did.
Standard library only: it ships with the entry point, and as ``code/truncation.py`` beside the serving handler
(``code/inference.py``) in every model folder.
"""

from __future__ import annotations

from typing import Any

STRATEGIES = ("head", "head+tail")
HEAD_SHARE = 4  # head+tail keeps 1/HEAD_SHARE of the room at the head (rounded), the rest at the tail
CLIP_CHARS = 8  # per token of max_length: longer texts are cut before tokenizing (see clip)


def check(truncation: Any) -> str:
    """The strategy, or a ValueError that names the value and the strategies there are."""
    if truncation not in STRATEGIES:
        raise ValueError(f"truncation must be one of {', '.join(STRATEGIES)}; got {truncation!r}. Fix: "
                         "truncation='head' (the first tokens) or 'head+tail' (the first quarter and the last three "
                         "quarters of the room, for long documents).")
    return str(truncation)


def encode(tokenizer: Any, firsts: list[str], seconds: list[str] | None, max_length: int, truncation: str = "head",
           padding: Any = False) -> dict[str, list[Any]]:
    """``tokenizer(firsts, seconds)`` with every row cut to ``max_length`` tokens by ``truncation`` (lists, not
    tensors; ``padding="max_length"`` pads them to ``max_length``)."""
    if check(truncation) == "head":
        return dict(tokenizer(firsts, seconds, truncation=True, max_length=max_length, padding=padding))
    full = tokenizer(firsts, seconds, truncation=False, return_special_tokens_mask=True, verbose=False)
    cut = keep_ends(dict(full), max_length)
    if padding:
        cut = dict(tokenizer.pad(cut, padding=padding, max_length=max_length))
    return cut


def keep_ends(encoded: dict[str, list[Any]], max_length: int) -> dict[str, list[Any]]:
    """Rows of an untruncated encoding (with its ``special_tokens_mask``) cut to ``max_length`` by removing the middle
    of each text; every field (ids, attention mask, token types) is cut alike and the mask is dropped.

    >>> row = {"input_ids": [[101, 1, 2, 3, 4, 5, 6, 7, 8, 102]], "special_tokens_mask": [[1, 0, 0, 0, 0, 0, 0, 0, 0, 1]]}
    >>> keep_ends(row, 6)["input_ids"]
    [[101, 1, 6, 7, 8, 102]]
    """
    special = encoded["special_tokens_mask"]
    names = [k for k in encoded if k != "special_tokens_mask"]
    out: dict[str, list[Any]] = {k: [] for k in names}
    for row, mask in enumerate(special):
        keep = kept_positions(mask, max_length)
        for name in names:
            values = encoded[name][row]
            out[name].append(values if keep is None else [values[i] for i in keep])
    return out


def kept_positions(special: list[int], max_length: int) -> list[int] | None:
    """The positions head+tail keeps of one row, given which are special tokens; None when the row fits.

    >>> kept_positions([1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1], 8)  # a pair: texts of 5 and 3 tokens, 5 of room
    [0, 1, 4, 5, 6, 7, 9, 10]
    """
    if len(special) <= max_length:
        return None
    texts = text_runs(special)
    room = max(0, max_length - sum(1 for s in special if s))
    keep = [i for i, s in enumerate(special) if s]
    for (start, end), kept in zip(texts, shares([end - start for start, end in texts], room)):
        head = (kept + HEAD_SHARE // 2) // HEAD_SHARE
        keep += list(range(start, start + head)) + list(range(end - (kept - head), end))
    return sorted(keep)


def text_runs(special: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of text tokens between special tokens: one for a text, two for a pair."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, s in enumerate([*special, 1]):
        if not s and start is None:
            start = i
        elif s and start is not None:
            runs.append((start, i))
            start = None
    return runs


def shares(lengths: list[int], room: int) -> list[int]:
    """How many tokens each text keeps when ``room`` tokens are shared longest first (as the tokenizer's longest-first
    truncation does): the longest texts are cut to one length, the shorter ones are kept whole.

    >>> shares([300, 40], 200), shares([300, 250], 200), shares([5, 3], 5)
    ([160, 40], [100, 100], [3, 2])
    """
    kept = list(lengths)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    left = room
    for n, i in enumerate(order):
        others = len(order) - n
        if lengths[i] * others <= left:
            left -= lengths[i]
            continue
        level, extra = divmod(left, others)
        for m, j in enumerate(sorted(order[n:], key=lambda j: -lengths[j])):  # the rest: to the longest first
            kept[j] = level + (1 if m < extra else 0)
        break
    return kept


def clip(tokenizer: Any, text: str, max_length: int, truncation: str = "head", other: str = "") -> str:
    """``text`` cut before tokenizing to what ``truncation`` keeps of it: its start (``head``), or its start and its
    end (``head+tail``), each making ``max_length`` tokens and 8 more (more than a short ``other`` text of its pair,
    which must stay the shorter one), cut at whitespace. The tokens kept are the same, but tokenizing a 6 MB text
    whole took 90 s and 480 MB, and a pair of two 40 KB texts 7 s and 1.2 GB. A text that never fills them stays
    whole. (Of a pair of two long texts, the tokenizer may then give the odd token of max_length to the other one.)
    """
    size, need = CLIP_CHARS * max_length, max_length + 8
    if len(text) <= size:
        return text
    if other and len(other) <= size:
        need = max(need, 1 + _count(tokenizer, other, 4 * size))
    head = _clip_end(tokenizer, text, size, need, tail=False)
    if check(truncation) == "head":
        return head
    tail = _clip_end(tokenizer, text, size, need, tail=True)
    return text if len(head) + len(tail) >= len(text) else head + " " + tail


def _clip_end(tokenizer: Any, text: str, size: int, need: int, tail: bool) -> str:
    """The shortest start (or end) of ``text`` from ``size`` characters, 4 times more each try, that makes ``need``
    tokens, cut at whitespace; the whole text where none does."""
    while len(text) > size:
        if tail:
            start = len(text) - size
            space = next((start + i for i, c in enumerate(text[start:start + size // 2]) if c.isspace()), -1)
            cut = text[space + 1:] if space >= 0 else text[start:]
        else:
            space = max(text.rfind(" ", size // 2, size), text.rfind("\n", size // 2, size))
            cut = text[:space if space > 0 else size]
        if _count(tokenizer, cut, need) == need:
            return cut
        size *= 4
    return text


def _count(tokenizer: Any, text: str, most: int) -> int:
    """Tokens of ``text``, counted up to ``most`` (a list call: transformers' tokenizers and the ONNX runtime's)."""
    return len(tokenizer([text], truncation=True, max_length=most, padding=False, return_tensors=None)["input_ids"][0])
