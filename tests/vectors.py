"""The shared test vectors (address, date, RFC 2047 and RFC 2231 cases
from other projects' suites), found beside the repository as
``../shared/vectors``: the one loader the vector tests share."""

from __future__ import annotations

import json
import os
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRECTORY = os.path.join(REPO, "..", "shared", "vectors")
ABSENT = "the shared test vectors (../shared/vectors next to the repository) are absent"


def present() -> bool:
    return os.path.isdir(DIRECTORY)


def load(kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every vector of these kinds, file by file in name order (none when
    the directory is absent)."""
    found: list[dict[str, Any]] = []
    if not present():
        return found
    for name in sorted(os.listdir(DIRECTORY)):
        if name.endswith(".json"):
            with open(os.path.join(DIRECTORY, name), encoding="utf-8") as fh:
                found.extend(v for v in json.load(fh)["vectors"] if v["kind"] in kinds)
    return found


def text(value: Any) -> str:
    """A vector's string: invalid UTF-8 is stored as hex, and given as
    surrogate escapes."""
    if isinstance(value, dict):
        return bytes.fromhex(value["bytes_hex"]).decode("utf-8", "surrogateescape")
    return str(value)
