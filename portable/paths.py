"""Where portable keeps what it makes: the cache folder (exported models, calibration)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$PORTABLE_CACHE`, else `$XDG_CACHE_HOME/portable`, else `~/.cache/portable`."""
    if env := os.environ.get("PORTABLE_CACHE"):
        return Path(env)
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg) / "portable"
    return Path.home() / ".cache" / "portable"
