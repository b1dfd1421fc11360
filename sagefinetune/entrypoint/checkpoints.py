"""Which checkpoint a run resumes from. Standard library only.

A checkpoint is complete only when it holds everything a resume needs: the weights, the optimizer and scheduler
states, the RNG state and ``trainer_state.json``. A kill mid-save, or SageMaker's checkpoint sync delivering part of a
folder, leaves one without some of them; the Trainer would then silently restart the optimizer and the learning-rate
schedule, so such folders are never resumed from.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable

WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
OPTIMIZER = ("optimizer.pt", "optimizer.bin")
SCHEDULER = ("scheduler.pt",)
STATE = ("trainer_state.json",)


def missing_parts(path: str) -> list[str]:
    """What a resume would need from the checkpoint folder ``path`` and does not find there."""
    names = set(os.listdir(path))
    missing = [group[0] for group in (STATE, WEIGHTS, OPTIMIZER, SCHEDULER) if not names.intersection(group)]
    if not any(re.fullmatch(r"rng_state(_\d+)?\.pth", n) for n in names):
        missing.append("rng_state.pth")
    return missing


def newest_complete_checkpoint(folder: str, remove_incomplete: bool = True,
                               log: Callable[[str], None] = print) -> str | None:
    """The newest complete ``checkpoint-<step>`` in ``folder``; incomplete ones are removed (on the main process)."""
    if not os.path.isdir(folder):
        return None
    found = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        path = os.path.join(folder, name)
        if not m or not os.path.isdir(path):
            continue
        missing = missing_parts(path)
        if not missing:
            found.append((int(m.group(1)), path))
        elif remove_incomplete:
            log(f"removing {path}: it is incomplete (no {', '.join(missing)}), so it cannot be resumed from")
            shutil.rmtree(path, ignore_errors=True)
    return max(found)[1] if found else None
