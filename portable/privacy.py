"""Keeping the user's home and interpreter paths out of the files portable writes.

Result files are shared. A traceback stored in one names every frame's file:
the venv, the interpreter, the user's home. Unless the user asked for debug
output, those prefixes are replaced by ``<python>`` and ``~``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from portable.runtimelog import debugging


def _prefixes() -> list[tuple[str, str]]:
    """(absolute prefix, stand-in), longest first so the most specific one wins."""
    pairs: dict[str, str] = {}
    for path, stand_in in ((sys.prefix, "<python>"), (sys.base_prefix, "<python>"),
                           (sys.exec_prefix, "<python>"), (str(Path.home()), "~")):
        if path and path != os.sep:
            pairs.setdefault(path, stand_in)
            pairs.setdefault(os.path.realpath(path), stand_in)
    return sorted(pairs.items(), key=lambda item: -len(item[0]))


def redact(text: str) -> str:
    """`text` with interpreter and home prefixes replaced, unless debugging."""
    if debugging():
        return text
    for prefix, stand_in in _prefixes():
        text = text.replace(prefix, stand_in)
    return text
