"""stdout that fails with one line: a closed pipe or a full device is not a crash of portable."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from portable.errors import EXIT_USAGE, PortableError


class StdoutError(PortableError):
    """stdout is closed or full, so the output cannot be printed."""

    exit_code = EXIT_USAGE


class GuardedStdout:
    """Wraps sys.stdout: an OSError from writing or flushing becomes a `StdoutError`.

    After the first failure the file descriptor is pointed at /dev/null, so what is
    still buffered (and the interpreter's own flush at exit) cannot fail again.
    """

    def __init__(self, stream: TextIO | None):
        self._stream = stream
        """None when the process was started with stdout closed."""

    def write(self, text: str) -> int:
        if text == "":
            return 0  # click probes streams with empty writes; nothing to fail on
        if self._stream is None:
            raise StdoutError("cannot write to stdout: it is closed")
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _failed(self, exc: OSError) -> StdoutError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError):
            pass  # no descriptor to redirect (a test's in-memory stream)
        finally:
            os.close(devnull)
        return StdoutError(f"cannot write to stdout: {exc.strerror or exc}")


def guard_stdout() -> None:
    """Install `GuardedStdout` as sys.stdout (once)."""
    if not isinstance(sys.stdout, GuardedStdout):
        sys.stdout = GuardedStdout(sys.stdout)  # type: ignore[assignment]
