"""Data preparation at 100k and 1M rows: the old row-by-row Python path against the Arrow path, in one run.

    python benchmarks/data_prep.py [--rows 100000 1000000]

Each measurement runs in a fresh process (so its peak memory is its own): read a DataFrame of short reviews
(Rotten Tomatoes snippets, repeated and numbered), check and encode the labels, fingerprint the rows, and write the
train/test channels. "row by row" is the way sagefinetune did it before (per-row label encoding through
``datasets.map``, one ``json.dumps`` per row for the JSON Lines channel and again for the fingerprint); "arrow" is
``Job.prepare()`` + ``Prepared.write()`` today (pyarrow compute on whole columns, Parquet). "arrow, again" is the same
Job a second time: read back from the prepared-data cache. For "arrow", the prepare column already includes the
fingerprint and the one Parquet write (into the cache); writing the channels is then a file copy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def frame(rows: int):
    import pandas as pd

    import sagefinetune as sft

    base = sft.Dataset.example("rotten_tomatoes").load()["train"]
    texts, labels = base["text"], base["label"]
    n = len(texts)
    return pd.DataFrame({"text": [f"{texts[i % n]} #{i}" for i in range(rows)],
                         "label": [labels[i % n] for i in range(rows)]})


def job(df):
    import sagefinetune as sft

    return sft.Job.from_dataset(sft.Dataset.from_pandas(df).split(test=0.1, seed=0)).map_labels(
        {0: "negative", 1: "positive"})


def row_by_row(df, out: str) -> dict[str, float]:
    """The previous implementation's costs: Python per row for labels, writing and hashing."""
    import hashlib

    import datasets

    datasets.disable_progress_bars()
    started = time.perf_counter()
    ds = datasets.Dataset.from_pandas(df, preserve_index=False)
    parts = ds.train_test_split(test_size=0.1, seed=0)
    mapping = {0: 0, 1: 1}
    for part in parts.values():
        empty = sum(1 for t in part["text"] if t is None or not str(t).strip())
        assert empty == 0 and all(v in mapping for v in part["label"])
    encoded = {k: v.map(lambda b: {"label": [mapping[x] for x in b["label"]]}, batched=True) for k, v in parts.items()}
    prepared = time.perf_counter()
    digest = hashlib.sha256()
    for split in sorted(encoded):
        for row in encoded[split]:
            digest.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode())
    fingerprinted = time.perf_counter()
    for split, part in encoded.items():
        with open(os.path.join(out, f"{split}.jsonl"), "w", encoding="utf-8") as fh:
            for row in part:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    written = time.perf_counter()
    return {"prepare": prepared - started, "fingerprint": fingerprinted - prepared, "write": written - fingerprinted}


def arrow(df, out: str) -> dict[str, float]:
    started = time.perf_counter()
    prepared = job(df).prepare()
    ready = time.perf_counter()
    assert prepared.fingerprint  # computed here (and cached on the object)
    fingerprinted = time.perf_counter()
    prepared.write(out)
    written = time.perf_counter()
    return {"prepare": ready - started, "fingerprint": fingerprinted - ready, "write": written - fingerprinted}


def measure(mode: str, rows: int, cache: str) -> None:
    """One measurement, in this (fresh) process; prints a JSON line."""
    os.environ["SFT_CACHE_DIR"] = cache
    df = frame(rows)
    with tempfile.TemporaryDirectory() as out:
        times = row_by_row(df, out) if mode == "row by row" else arrow(df, out)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"mode": mode, "rows": rows, **times, "bytes": size, "peak_mib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], int(args.measure[1]), args.cache)
        return
    print(f"{'rows':>9} {'mode':<14} {'prepare s':>9} {'fingerprint s':>13} {'write s':>8} {'total s':>8} "
          f"{'channels MB':>11} {'peak MiB':>9}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as cache:
            for mode in ("row by row", "arrow", "arrow, again"):
                line = subprocess.run([sys.executable, __file__, "--measure", mode.split(",")[0], str(rows),
                                       "--cache", cache], capture_output=True, text=True, check=True).stdout
                r = json.loads(line.strip().splitlines()[-1])
                total = r["prepare"] + r["fingerprint"] + r["write"]
                print(f"{rows:>9,} {mode:<14} {r['prepare']:>9.2f} {r['fingerprint']:>13.2f} {r['write']:>8.2f} "
                      f"{total:>8.2f} {r['bytes'] / 1e6:>11.1f} {r['peak_mib']:>9.0f}", flush=True)
    print(f"\nmachine: {os.cpu_count()} CPU cores; time includes reading the DataFrame into Arrow, not building it.")


if __name__ == "__main__":
    main()
