"""Fail when pip resolved any package older than its floor: the sign that the resolver backtracked.

    pip install --quiet --report report.json <the install command's arguments>   # into a new venv
    python .ci/check_install.py report.json .ci/floors.txt

(In a venv that already holds packages, ``--dry-run --ignore-installed`` makes the report list every package.)

floors.txt holds one ``name>=version`` a line (``#`` comments). A fresh resolve of sagemaker 3.x once took minutes and
settled on s3fs 0.4.2 (2020), far below anything the SDK is tested with; floors on the packages that drift like this
turn such a resolve into a CI failure instead of a slow, silently old install. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """The numeric release part of a version: '2026.9.0' -> (2026, 9, 0); '2.13.0+cpu' -> (2, 13, 0)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    parts = [int(p) for p in match.group(0).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def read_floors(path: str) -> dict[str, str]:
    floors = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, _, version = line.partition(">=")
            if not version:
                raise SystemExit(f"{path}: {line!r} is not 'name>=version'")
            floors[normalise(name)] = version.strip()
    return floors


def main(report_path: str, floors_path: str) -> int:
    with open(report_path, encoding="utf-8") as fh:
        report = json.load(fh)
    resolved = {normalise(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    floors = read_floors(floors_path)
    too_old = [(name, resolved[name], floor) for name, floor in sorted(floors.items())
               if name in resolved and release(resolved[name]) < release(floor)]
    checked = sum(1 for name in floors if name in resolved)
    print(f"pip resolved {len(resolved)} packages; {checked} have a floor in {floors_path}")
    for name, version, floor in too_old:
        print(f"  TOO OLD: {name} {version} (floor {floor}): pip backtracked; pin a range that agrees")
    return 1 if too_old else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
