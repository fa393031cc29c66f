"""One error hierarchy; each error says what went wrong and what to do, and maps to an exit code.

Exit codes (documented in the README and `portable --help`):
    0  ok
    1  a check failed (parity, regression, conformance)
    2  usage error: bad option, unknown backend, missing or invalid model
    3  backend unavailable on this machine
    4  backend crashed or timed out
  130  interrupted (Ctrl-C); completed work is kept
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CRASHED = 4
EXIT_INTERRUPTED = 130


class PortableError(Exception):
    """Base class. `exit_code` is what the CLI exits with when this error ends a command."""

    exit_code = EXIT_USAGE


class BackendNotFound(PortableError):
    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown backend {name!r}; known backends: {', '.join(self.known)}")


class BackendUnavailable(PortableError):
    """The backend's runtime or device is missing here. `reason` says what, `hint` what to do."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, reason: str, hint: str = ""):
        self.reason = reason
        self.hint = hint
        super().__init__(f"{reason} ({hint})" if hint else reason)


class AdapterLoadError(PortableError):
    """An adapter's entry point could not be imported or is not a valid adapter."""

    exit_code = EXIT_UNAVAILABLE


class InvalidOption(PortableError):
    def __init__(self, backend: str, message: str):
        super().__init__(f"backend {backend!r}: {message}")


class ModelError(PortableError):
    """A model file is missing, corrupt, unsafe or not runnable as asked."""


class InputError(PortableError):
    """Inputs do not match the model's signature (names, shapes, dtypes, unresolved dims)."""


class UnsupportedModel(PortableError):
    """The backend cannot run this model at all (for example an op it does not implement)."""

    exit_code = EXIT_UNAVAILABLE


class PlacementError(PortableError):
    """Under --strict, the runtime placed nodes on a device other than the one asked for."""

    exit_code = EXIT_CHECK_FAILED


class BackendCrashed(PortableError):
    """The backend raised, crashed or hung while running."""

    exit_code = EXIT_CRASHED


class OutputError(PortableError):
    """A result cannot be written where asked (checked before measuring)."""


class ResultFileError(PortableError):
    """A result file is unreadable, of another schema version, or fails validation."""


#: A line that only says where in a runtime's C++ source an error was raised.
_SOURCE_LOCATION = re.compile(
    r"^(Exception from |Check '.*' failed at )?[\w./\\-]+\.(cpp|cc|cxx|c|hpp|h):\d+:?$")


def condense_message(text: str, limit: int = 1000) -> str:
    """One line of a runtime's multi-line message: its first line and the cause below it.

    OpenVINO's messages start ``Exception from src/.../infer_request.cpp:189:`` and
    give the cause lines later; ONNX Runtime lists one line per bad index. Blank
    lines and lines that only name a source location are dropped, the rest joined,
    and a text over `limit` characters is cut with an ellipsis.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return text.strip()
    kept = [lines[0], *(line for line in lines[1:] if not _SOURCE_LOCATION.match(line))]
    joined = " ".join(kept)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"
