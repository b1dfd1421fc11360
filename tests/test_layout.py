"""The package's shape, checked: the layers (import-linter's contracts in pyproject.toml), small modules and
functions, a docstring that says what each module is, and no private name taken across modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sagefinetune"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _lint_imports() -> str | None:
    found = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return found if Path(found).exists() else None


def test_the_layers_hold():
    command = _lint_imports()
    if command is None:
        pytest.fail("lint-imports is missing. Fix: pip install -e '.[dev]' (import-linter is in the dev extra).")
    done = subprocess.run([command, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_at_most_ten_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_small_and_say_what_they_are(path):
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    assert text.count("\n") <= 400, f"{path.name} has {text.count(chr(10))} lines; split it by what it holds"
    assert ast.get_docstring(tree), f"{path.name} has no docstring saying what it is"
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, f"functions over 60 lines in {path.name}: {long}"


def test_no_private_name_crosses_a_module():
    taken = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sagefinetune")):
                taken += [f"{path.relative_to(PACKAGE)}: {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not taken, taken
