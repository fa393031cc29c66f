"""Probing backends without trusting plugin code: third-party adapters probe in a child process.

`portable backends` and `portable inspect` ask every backend whether it can run
here. A vendor plugin's import, `probe()` or `capabilities()` may segfault, hang
or call `sys.exit()`; in a child process with a timeout that costs its own row,
never the command. Built-in adapters (shipped in ``portable.backends``) probe in
this process: their probes only import a runtime and read its device list.
Nothing is cached, so a fixed plugin shows as fixed on the next run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection
from typing import Any

from portable import registry
from portable.childexit import describe_exit
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
    report, failure = run_in_child(probe_here, (name,), limit)
    if report is not None:
        return report
    return ProbeReport(registry.BackendStatus(
        name, True, False, reason=f"broken plugin: its probe {failure}",
        hint="report it to the plugin's vendor; set PORTABLE_BACKENDS to skip it"))


def survey(include_hidden: bool = False) -> list[registry.BackendStatus]:
    """`registry.survey`, with third-party adapters probed in child processes."""
    rows = [probe(name).status for name in registry.installed_names()]
    return [row for row in rows if include_hidden or not row.hidden]


def run_in_child(func: Callable[..., Any], args: Sequence[Any],
                 timeout: float) -> tuple[Any, str]:
    """``(func(*args), "")`` from a spawned child, or ``(None, what went wrong)``.

    `func` must be importable by name. The child is killed after `timeout` seconds.
    """
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(func, tuple(args), sender), daemon=True)
    proc.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            try:
                kind, value = receiver.recv()
            except (EOFError, OSError):
                kind, value = "died", None
            if kind == "ok":
                return value, ""
            if kind == "raised":
                return None, f"raised {value}"
        else:
            kind = "timeout"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        receiver.close()
    if kind == "timeout":
        return None, f"did not answer within {timeout:g}s (killed)"
    return None, f"its process {describe_exit(proc.exitcode)}"


def _child(func: Callable[..., Any], args: tuple[Any, ...], conn: Connection) -> None:
    try:
        conn.send(("ok", func(*args)))
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent reports it
        conn.send(("raised", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
