"""Probing backends without trusting plugin code: third-party adapters probe in a child process.

`portable backends` and `portable inspect` ask every backend whether it can run
here. A vendor plugin's import, `probe()` or `capabilities()` may segfault, hang
or call `sys.exit()`; in a child process with a timeout that costs its own row,
never the command. Built-in adapters (shipped in ``portable.backends``) probe in
this process: their probes only import a runtime and read its device list.
Nothing is cached, so a fixed plugin shows as fixed on the next run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata

from portable import registry
from portable.childproc import DIED, OK, RAISED, TIMEOUT, call_in_child
from portable.errors import PortableError

ENV_TIMEOUT = "PORTABLE_PROBE_TIMEOUT"
DEFAULT_TIMEOUT_S = 15.0
BUILTIN_MODULES = "portable."


@dataclass(frozen=True)
class ProbeReport:
    """A backend's row, and the op types its runtime lists when it is available."""

    status: registry.BackendStatus
    supported_ops: frozenset[str] | None = None
    """None when the runtime cannot list its ops (or the backend is not available)."""
    capabilities_error: str = ""


def probe_here(name: str) -> ProbeReport:
    """Load, probe and ask the capabilities of `name` in this process (never raising)."""
    status = registry.status(name)
    if not status.available:
        return ProbeReport(status)
    try:
        return ProbeReport(status, registry.create(name).capabilities().supported_ops)
    except PortableError as exc:
        return ProbeReport(status, capabilities_error=str(exc))
    except Exception as exc:  # capabilities() broke the contract: one row says so
        return ProbeReport(status, capabilities_error=f"{type(exc).__name__}: {exc}")


def is_third_party(name: str) -> bool:
    """Whether the entry point registered as `name` lives outside portable itself."""
    canonical = registry.canonical_name(name)
    for ep in metadata.entry_points(group=registry.GROUP):
        if ep.name == canonical:  # the first registration wins, as in the registry
            return not ep.value.startswith(BUILTIN_MODULES)
    return False


def timeout_s() -> float:
    """`PORTABLE_PROBE_TIMEOUT` seconds when set to a positive number, else the default."""
    try:
        value = float(os.environ.get(ENV_TIMEOUT, ""))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if 0 < value < float("inf") else DEFAULT_TIMEOUT_S


def probe(name: str, timeout: float | None = None) -> ProbeReport:
    """`probe_here(name)`: in a child process with a timeout for a third-party adapter."""
    if not is_third_party(name):
        return probe_here(name)
    limit = timeout if timeout is not None else timeout_s()
    outcome = call_in_child(probe_here, (name,), limit)
    if outcome.kind == OK:
        return outcome.value
    failure = {RAISED: f"raised {outcome.detail}", TIMEOUT: f"did not answer within {limit:g}s",
               DIED: f"died: its process {outcome.detail}"}[outcome.kind]
    return ProbeReport(registry.BackendStatus(
        name, True, False, reason=f"broken plugin: its probe {failure}",
        hint="report it to the plugin's vendor; set PORTABLE_BACKENDS to skip it"))


def survey(include_hidden: bool = False) -> list[registry.BackendStatus]:
    """`registry.survey`, with third-party adapters probed in child processes."""
    rows = [probe(name).status for name in registry.installed_names()]
    return [row for row in rows if include_hidden or not row.hidden]
