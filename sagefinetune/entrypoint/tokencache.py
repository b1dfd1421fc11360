"""Tokenise once: tokenised splits kept by content, made by one process per machine.

The key hashes everything the token ids depend on: the channel files (names, sizes, contents), the tokenizer (its
full serialised state, not its name), ``max_length``, the truncation, the padding mode, the columns, the class
names, the label mapping and the problem type. A resumed run, a spot restart, every process of a torchrun job and
a grid cell or tuning trial on the same data and tokenizer settings load the same Arrow files (memory-mapped)
instead of tokenising again.

Only local rank 0 tokenises: it writes into a staging folder and renames it into place, so the folder appears whole
with its ``done`` marker; the other processes wait for that marker, then load. If rank 0 cannot write the cache it
leaves a ``failed`` marker and every process tokenises for itself.

Where (``<root>/tokenized/<key>/``): ``$SFT_CACHE_DIR`` when set (the local backend sets it to sagefinetune's cache,
shared by every local run), else the checkpoint directory. On SageMaker that is /opt/ml/checkpoints, which syncs to
the job's checkpoint_s3: the same Job relaunched (a spot restart, a resume) finds its tokens there. Only the newest
key is kept under a checkpoint directory, so S3 holds one copy. Size: about 6 bytes per token (int32 ids, int8
mask and type ids), e.g. 1M rows of 60 tokens take about 400 MB. ``cache_tokens=false`` turns it off.
Standard library at import; datasets when used.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

FORMAT = 1  # bump when tokenize_splits changes what it writes
DATA_PATTERNS = ("*.jsonl", "*.json", "*.parquet", "*.csv")
SETTINGS = ("text_column", "text_pair_column", "label_column", "label_mapping", "pad_to_max_length", "problem_type",
            "truncation")


def root(checkpoint_dir: str) -> str:
    """``$SFT_CACHE_DIR/tokenized``, else ``<checkpoint_dir>/tokenized``."""
    base = os.environ.get("SFT_CACHE_DIR")
    return os.path.join(base or checkpoint_dir, "tokenized")


def channel_digest(folder: str) -> list[list[Any]]:
    """Each data file of a channel folder: its path inside the folder, size and sha256 of its content."""
    out = []
    files = sorted({f for p in DATA_PATTERNS for f in glob.glob(os.path.join(folder, "**", p), recursive=True)})
    for path in files:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        out.append([os.path.relpath(path, folder), os.path.getsize(path), h.hexdigest()])
    return out


def tokenizer_digest(tokenizer: Any) -> str:
    """The tokenizer's content: a fast tokenizer's full JSON state, else its vocabulary; and its settings."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    settings = {"inputs": list(tokenizer.model_input_names), "padding_side": getattr(tokenizer, "padding_side", ""),
                "truncation_side": getattr(tokenizer, "truncation_side", ""),
                "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}}
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def cache_key(channels: dict[str, str], tokenizer: Any, hp: dict[str, Any], names: list[str], max_length: int) -> str:
    """The hash of everything the tokenised splits depend on."""
    parts = {"format": FORMAT, "channels": {name: channel_digest(path) for name, path in sorted(channels.items())},
             "tokenizer": tokenizer_digest(tokenizer), "max_length": max_length, "labels": list(names),
             "settings": {k: hp.get(k) for k in SETTINGS}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def tokenized(compute: Callable[[], Any], *, key: str, cache_root: str, log: Callable[[str], None],
              prune: bool = False, timeout: float = 4 * 3600) -> Any:
    """The tokenised DatasetDict under ``key``: loaded when cached, else made by local rank 0 and loaded by all.

    Args:
        compute: tokenises the channels (called on local rank 0, or on every rank when there is no cache).
        prune: remove the other keys under ``cache_root`` first (a checkpoint directory keeps one copy).
    """
    import datasets

    folder = os.path.join(cache_root, key)
    launch = os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("MASTER_PORT") or str(os.getpid())
    done, failed = os.path.join(folder, "done"), os.path.join(cache_root, f".{key}.{launch}.failed")
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if rank != 0:
        return _wait_and_load(compute, folder, done, failed, timeout)
    if os.path.isfile(done):
        log(f"tokenised data reused from {folder} (same data, tokenizer and settings): no tokenising")
        return datasets.load_from_disk(os.path.join(folder, "data"))
    started = time.time()
    data = compute()
    seconds = time.time() - started
    if _store(data, folder, key, cache_root, prune, seconds):
        log(f"tokenised in {seconds:.1f}s; cached in {folder} for resumed runs and other processes")
        return datasets.load_from_disk(os.path.join(folder, "data"))
    _touch(failed)
    log(f"tokenised in {seconds:.1f}s; the cache in {cache_root} could not be written, so the next run tokenises again")
    return data


def _wait_and_load(compute: Callable[[], Any], folder: str, done: str, failed: str, timeout: float) -> Any:
    """A process other than local rank 0: wait for rank 0's cache, load it (tokenise here if rank 0 could not write)."""
    import datasets

    me = f"[sagefinetune] rank {os.environ.get('RANK', os.environ.get('LOCAL_RANK'))}"
    started = time.time()
    while not os.path.isfile(done):
        if os.path.isfile(failed) or time.time() - started > timeout:
            print(f"{me}: no tokenised data from local rank 0; tokenising here", flush=True)
            return compute()
        time.sleep(0.5)
    print(f"{me}: loaded the tokenised data of local rank 0 from {folder}", flush=True)
    return datasets.load_from_disk(os.path.join(folder, "data"))


def _store(data: Any, folder: str, key: str, cache_root: str, prune: bool, seconds: float) -> bool:
    """Write ``data`` into place atomically (staging folder, then rename). False when the cache cannot be written."""
    staging = os.path.join(cache_root, f".{key}.{os.getpid()}")
    try:
        os.makedirs(cache_root, exist_ok=True)
        if prune:
            for name in os.listdir(cache_root):
                if name != key and not name.startswith("."):
                    shutil.rmtree(os.path.join(cache_root, name), ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        data.save_to_disk(os.path.join(staging, "data"))
        with open(os.path.join(staging, "done"), "w") as fh:
            json.dump({"key": key, "rows": {k: len(v) for k, v in data.items()}, "seconds": round(seconds, 2)}, fh)
        if os.path.isdir(folder) and not os.path.isfile(os.path.join(folder, "done")):
            shutil.rmtree(folder, ignore_errors=True)  # a leftover without its marker
        try:
            os.replace(staging, folder)
        except OSError:
            if not os.path.isfile(os.path.join(folder, "done")):  # another job wrote the same key first: keep it
                raise
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _touch(path: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write("rank 0 could not write the cache\n")
    except OSError:
        pass
