"""The package's version, whose one source is `version` in pyproject.toml.

Run from a source tree (a checkout, an editable install) the file itself is read, so
a version changed there shows without reinstalling; an installed wheel has no such
file beside it and reports what pip recorded from it (importlib.metadata).
"""
from __future__ import annotations

import os
import re
from importlib import metadata

DISTRIBUTION = "coconut"
_SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_tree_version(root: str = _SOURCE_TREE) -> str | None:
    """`version` of the [project] table of root/pyproject.toml, when it is this package's."""
    try:
        with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    table = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if table is None or not re.search(rf'^name\s*=\s*"{DISTRIBUTION}"\s*$', table.group(1), re.M):
        return None
    found = re.search(r'^version\s*=\s*"([^"]+)"\s*$', table.group(1), re.M)
    return found.group(1) if found else None


def package_version() -> str:
    version = source_tree_version()
    if version is not None:
        return version
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
