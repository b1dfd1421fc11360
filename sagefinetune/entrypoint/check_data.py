"""Check ``from_s3`` data inside AWS before a pipeline trains on it: the pipeline's ``CheckData`` processing step.

    python check_data.py --data_dir /opt/ml/processing/data --labels '["negative","positive"]' \\
        --label_mapping '{"1":"negative","5":"positive"}' --text_column body --label_column stars

Every channel folder under ``data_dir`` (train, test, validation) must hold data files with the named columns, text in
the text column(s) and no empty text, and only label values the label map covers. It prints the rows per class and
exits non-zero with the reason otherwise, so the pipeline stops before any GPU starts. Standard library here; the
``datasets`` package (in the training image) when it runs.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from typing import Any

if __package__:
    from . import channels, contract, redaction
else:  # run as a script: the modules sit beside this file
    import channels  # type: ignore[no-redef]
    import contract  # type: ignore[no-redef]
    import redaction  # type: ignore[no-redef]

DATA_DIR = "/opt/ml/processing/data"
READ_HYPERPARAMETERS = ("labels", "problem_type", "text_column", "label_column", "text_pair_column", "label_mapping")


def parse_args(argv: list[str]) -> tuple[str, dict[str, Any]]:
    if len(argv) % 2 or not all(a.startswith("--") for a in argv[::2]):
        raise SystemExit(f"check_data.py: arguments come as --name value pairs; got {argv}")
    raw = {key[2:].replace("-", "_"): value for key, value in zip(argv[::2], argv[1::2])}
    data_dir = raw.pop("data_dir", DATA_DIR)
    unknown = sorted(set(raw) - set(READ_HYPERPARAMETERS))
    if unknown:
        raise SystemExit(f"check_data.py: unknown argument(s) {unknown}")
    return data_dir, contract.parse_hyperparameters(raw)


def check_split(name: str, path: str, hp: dict[str, Any]) -> collections.Counter[str]:
    """Rows per class of one channel; SystemExit naming the problem when a column, a text or a label is wrong."""
    ds = channels.load_channel(path)
    pair = hp["text_pair_column"] or None
    channels.check_columns(name, ds, [hp["text_column"], hp["label_column"]] + ([pair] if pair else []))
    for column in [hp["text_column"]] + ([pair] if pair else []):
        empty = sum(1 for t in ds[column] if t is None or not str(t).strip())
        if empty:
            raise SystemExit(f"the {name} channel has {empty} row(s) with an empty {column!r}. Fix: drop them.")
    names, multi = hp["labels"], hp["problem_type"] == "multi_label_classification"
    encode = channels.label_encoder(names, hp["label_mapping"])
    counts: collections.Counter[str] = collections.Counter()
    unknown: collections.Counter[str] = collections.Counter()
    for value in ds[hp["label_column"]]:
        for item in (value if multi else [value]):
            try:
                counts[names[encode(item)]] += 1
            except (ValueError, IndexError, TypeError):
                unknown[repr(item)] += 1
    if unknown:
        shown = ", ".join(f"{v} ({n} rows)" for v, n in unknown.most_common(5))
        raise SystemExit(f"the {name} channel holds label values the label map does not cover: {shown}. "
                         "Fix: .map_labels({...}) with those values, or filter the rows out of the files.")
    return counts


def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    data_dir, hp = parse_args(sys.argv[1:] if argv is None else argv)
    if not hp["labels"]:
        raise SystemExit("check_data.py: --labels (the class names, as a JSON list) is required")
    found = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    if "train" not in found:
        raise SystemExit(f"no train channel under {data_dir}; found {found}")
    report = {split: dict(check_split(split, os.path.join(data_dir, split), hp)) for split in found}
    missing = [n for n in hp["labels"] if n not in report["train"]]
    if missing and hp["problem_type"] != "multi_label_classification":
        raise SystemExit(f"classes {missing} have no rows in the train channel; the model could never predict them.")
    print(f"[sagefinetune] data checked: {json.dumps(report, sort_keys=True)}", flush=True)
    return report


if __name__ == "__main__":
    redaction.run_redacted(main)
