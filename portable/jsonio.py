"""Strict JSON in and out of result files: no NaN written, nothing unbounded read.

Result files come from anywhere. Reading one caps its size (``PORTABLE_MAX_RESULT_BYTES``,
64 MiB by default) and turns every way the text can defeat the parser (a 5,000-digit
integer, brackets nested 200,000 deep, invalid UTF-8) into a `ResultFileError`
naming the file. Writing one never emits ``NaN`` or ``Infinity``, which strict
JSON readers reject: a non-finite figure is written as null, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from portable.errors import ResultFileError

log = logging.getLogger(__name__)

ENV_MAX_BYTES = "PORTABLE_MAX_RESULT_BYTES"
DEFAULT_MAX_BYTES = 64 * 2**20


def max_bytes() -> int:
    """The size cap of a result file to read: `PORTABLE_MAX_RESULT_BYTES`, else 64 MiB."""
    try:
        value = int(os.environ.get(ENV_MAX_BYTES, ""))
    except ValueError:
        return DEFAULT_MAX_BYTES
    return value if value > 0 else DEFAULT_MAX_BYTES


def read_json(path: Path) -> Any:
    """The JSON value in `path`; ResultFileError naming the file for anything unreadable."""
    limit = max_bytes()
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such result file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise ResultFileError(
            f"{str(path)[:200]!r}: not a readable result file "
            f"({getattr(exc, 'strerror', None) or exc})") from None
    if len(data) > limit:
        raise ResultFileError(
            f"{path}: larger than {limit / 2**20:g} MiB; not read (set {ENV_MAX_BYTES} "
            "to a byte count to raise the limit)")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ResultFileError(f"{path}: not a readable result file (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise ResultFileError(f"{path}: not a readable result file ({str(exc)[:200]})") from None


def dumps_finite(document: Any) -> str:
    """`document` as indented strict JSON; non-finite floats become null (with a warning)."""
    replaced: list[str] = []
    text = json.dumps(_finite(document, "", replaced), indent=1, allow_nan=False)
    if replaced:
        log.warning("non-finite figures written as null: %s", ", ".join(replaced[:10]))
    return text


def _finite(value: Any, where: str, replaced: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        replaced.append(where or "/")
        return None
    if isinstance(value, dict):
        return {key: _finite(item, f"{where}/{key}", replaced) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item, f"{where}/{i}", replaced) for i, item in enumerate(value)]
    return value
