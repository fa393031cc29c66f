"""Installing an example vendor package for real, for child processes only.

It is installed with `pip --target` into a temporary folder and put on PYTHONPATH for
the returned environment: the developer's environment is never changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def install_example(name: str, tmp_path_factory) -> dict[str, str]:
    """An environment in which `examples/<name>` is installed (its dependencies are not)."""
    target = tmp_path_factory.mktemp(f"{name}-site")
    source = tmp_path_factory.mktemp(f"{name}-src") / name
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    shutil.copytree(EXAMPLES / name, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(target), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("PORTABLE_BACKENDS", None)
    return env
