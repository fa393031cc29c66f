"""What machine and software a result was measured on.

Records versions and hardware only: never environment variables, user names or
paths under the user's home.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from functools import cache
from importlib import metadata
from typing import Any

import portable

#: What every run uses; adapters add the distributions they declare (`Adapter.packages`).
PACKAGES = ("onnx", "numpy", "click")


@cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    """The installed version of `name`, without importing it."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def usable_cores() -> int | None:
    """Cores this process may run on (its affinity), where the platform says."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def capture(packages: Sequence[str] = ()) -> dict[str, Any]:
    versions = {name: package_version(name) for name in dict.fromkeys((*PACKAGES, *packages))}
    return {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
        "portable": portable.__version__,
        "packages": {k: v for k, v in versions.items() if v is not None},
    }
