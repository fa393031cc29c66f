"""How loud the runtimes' own loggers may be: quiet unless portable itself is debugging.

ONNX Runtime and OpenVINO write their own lines to stderr (``[E:onnxruntime:...]``)
on top of portable's one-line error. They stay silent below fatal unless portable
logs at debug level (``-vv`` or ``--debug``, which also reaches child processes
through ``PORTABLE_DEBUG``).
"""

from __future__ import annotations

import logging
import os

ENV_DEBUG = "PORTABLE_DEBUG"

ORT_WARNING = 2
ORT_FATAL = 4


def debugging() -> bool:
    """Whether the user asked for debug output (in this process or the parent command)."""
    return bool(os.environ.get(ENV_DEBUG)) or logging.getLogger("portable").isEnabledFor(
        logging.DEBUG)


def ort_severity() -> int:
    """ONNX Runtime's log severity: warnings when debugging, else fatal errors only."""
    return ORT_WARNING if debugging() else ORT_FATAL
