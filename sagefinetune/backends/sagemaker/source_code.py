"""The entry point's files as a SageMaker job receives them: which files a script needs, staged once per content."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

ENTRYPOINT_DIR = Path(__file__).resolve().parents[2] / "entrypoint"
SOURCE_PATTERNS = ("*.py", "metrics/*.py")  # the entry point and the modules beside it; __init__.py stays behind
PROCESSING_SCRIPTS = ("evaluation.py", "check_data.py")  # a pipeline's processing steps run these, not training


def source_files(script: str = "train.py") -> list[Path]:
    """The files a job runs: the script, and the modules beside it that other scripts do not need (no __init__)."""
    skip = {"__init__.py", *(s for s in PROCESSING_SCRIPTS if s != script)}
    if script != "train.py":
        skip.update({"train.py", "training.py", "checkpoints.py", "tracking.py"})
    found = {p for pattern in SOURCE_PATTERNS for p in ENTRYPOINT_DIR.glob(pattern) if p.name not in skip}
    return sorted(found)


def stage_source(staged: str, install_requirements: bool, extra: tuple[str, ...] = ()) -> str:
    """Copy the entry point's files (and its requirements with ``extra`` ones, unless nothing may be installed) into
    ``staged``."""
    for source in source_files():
        target = Path(staged) / source.relative_to(ENTRYPOINT_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    if install_requirements:
        shutil.copy2(ENTRYPOINT_DIR / "requirements.txt", Path(staged) / "requirements.txt")
        if extra:
            with open(Path(staged) / "requirements.txt", "a") as fh:
                fh.write("".join(f"{line}\n" for line in extra))
    return staged


def source_code(spec: Any, source_dir: str | None, extra: tuple[str, ...] = ()) -> Any:
    """The SDK's SourceCode of the entry point: staged into ``source_dir`` for a fit, or once per content for a
    pipeline; ``extra`` requirements (tracking's mlflow) are added to the entry point's own."""
    from sagemaker.core.training.configs import SourceCode

    install = spec.install_requirements
    staged = stage_source(source_dir, install, extra) if source_dir else stable_source_dir(install, extra)
    return SourceCode(source_dir=staged, entry_script="train.py", requirements="requirements.txt" if install else None,
                      ignore_patterns=["__pycache__", "*.pyc"])


def stable_source_dir(install_requirements: bool, extra: tuple[str, ...] = ()) -> str:
    """The entry point staged once per content in the temp folder: the same code, the same path. The SDK records the
    path in the sm_drivers channel (sourcecode.json), so a pipeline's definition stays the same from build to build."""
    digest = hashlib.sha256(str(install_requirements).encode() + "\0".join(extra).encode())
    for path in source_files():
        digest.update(path.relative_to(ENTRYPOINT_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    final = Path(tempfile.gettempdir()) / "sagefinetune-code" / digest.hexdigest()[:16]
    expected = [final / p.relative_to(ENTRYPOINT_DIR) for p in source_files()]
    if final.is_dir() and not all(p.is_file() for p in expected):  # a temp-folder cleaner took some of it
        shutil.rmtree(final, ignore_errors=True)
    if not final.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".staging-", dir=final.parent)
        stage_source(staging, install_requirements, extra)
        try:
            os.rename(staging, final)  # atomic: a reader sees all of it or none of it
        except OSError:  # another process staged the same code first
            shutil.rmtree(staging, ignore_errors=True)
    return str(final)
