"""Looking for a vendor runtime as vendors document it: device nodes, libraries, tools, packages.

Each check says what it looked for and where, so an adapter's `BackendUnavailable`
can name exactly what is missing. Nothing here loads a library or imports a package:
libraries are searched on disk, packages through their import spec.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from portable.errors import BackendUnavailable

#: Folders searched for shared libraries besides LD_LIBRARY_PATH.
SYSTEM_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/x86_64-linux-gnu",
                   "/usr/lib/aarch64-linux-gnu")


def device_nodes(patterns: Iterable[str]) -> list[str]:
    """Device files matching any of the glob `patterns` (``/dev/davinci[0-9]*``)."""
    return sorted({path for pattern in patterns for path in glob.glob(pattern)})


def library_dirs(home_vars: Mapping[str, Sequence[str]]) -> list[str]:
    """LD_LIBRARY_PATH, each toolkit home's (or its defaults') lib folders, then system ones."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    for var, defaults in home_vars.items():
        homes = [os.environ[var]] if os.environ.get(var) else list(defaults)
        for home in homes:
            dirs += [os.path.join(home, "lib64"), os.path.join(home, "lib")]
    return dirs + list(SYSTEM_LIB_DIRS)


def find_library(names: Iterable[str], dirs: Iterable[str]) -> str | None:
    """The first file named ``lib<name>.so*`` in `dirs`; None when absent."""
    for folder in dirs:
        for name in names:
            hits = sorted(glob.glob(os.path.join(folder, f"{name}*")))
            if hits:
                return hits[0]
    return None


def find_tool(name: str) -> str | None:
    """The path of a management tool (``npu-smi``) on PATH; None when absent."""
    return shutil.which(name)


def has_package(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class VendorRuntime:
    """What a vendor documents as a working install; `missing()` lists what this host lacks."""

    vendor: str
    device_nodes: tuple[str, ...]
    """Globs of the driver's device files."""
    libraries: tuple[str, ...]
    """Runtime library file prefixes (``libmusart.so``); any one found is enough."""
    home_vars: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Toolkit home variables and their default folders (``MUSA_HOME`` -> /usr/local/musa)."""
    tools: tuple[str, ...] = ()
    """Management tools (``npu-smi``); any one on PATH is enough."""
    packages: tuple[str, ...] = ()
    """Python modules that run models on the device; any one importable is enough."""
    install_hint: str = ""

    def missing(self) -> list[str]:
        gaps = []
        if self.device_nodes and not device_nodes(self.device_nodes):
            gaps.append(f"no device nodes ({', '.join(self.device_nodes)}): driver not loaded "
                        "or no device")
        if self.libraries and not find_library(self.libraries, library_dirs(self.home_vars)):
            where = ["LD_LIBRARY_PATH", *(f"${var}" for var in self.home_vars), "system lib dirs"]
            gaps.append(f"runtime library {' or '.join(self.libraries)} not found "
                        f"(searched {', '.join(where)})")
        if self.tools and not any(find_tool(tool) for tool in self.tools):
            gaps.append(f"{' or '.join(self.tools)} not on PATH")
        if self.packages and not any(has_package(pkg) for pkg in self.packages):
            gaps.append(f"Python package {' or '.join(self.packages)} not importable")
        return gaps

    def require(self) -> list[str]:
        """The device nodes found; raises BackendUnavailable naming every gap."""
        gaps = self.missing()
        if gaps:
            raise BackendUnavailable(f"{self.vendor}: " + "; ".join(gaps), self.install_hint)
        return device_nodes(self.device_nodes)
