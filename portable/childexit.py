"""How a child process ended, in words: the one phrasing every isolated runner reports."""

from __future__ import annotations

import signal


def describe_exit(code: int | None) -> str:
    """``killed by SIGSEGV``, ``exited with code 3``, or ``still running``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
