"""Running a cell in its own child process, so a crashing or hanging runtime costs one cell.

The child is started with ``spawn`` (a fresh interpreter: no torch or runtime
state inherited from the parent, and its peak RSS is the backend's own). It sends
back the result dict; a child that dies or outlives its timeout is recorded as
crashed or timed out, with the signal or the limit.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from portable.harness import (
    STATUS_CRASHED,
    STATUS_ERROR,
    STATUS_TIMEOUT,
    Cell,
    base_cell,
    error_record,
    run_cell,
)


def _child(cell: Cell, conn: Connection) -> None:
    try:
        conn.send(run_cell(cell))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it is
        result = base_cell(cell)
        result.update(status=STATUS_ERROR, error=error_record(exc, with_traceback=True))
        conn.send(result)
    finally:
        conn.close()


def _signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def run_isolated(cell: Cell, timeout_s: float) -> dict[str, Any]:
    """`run_cell` in a child process; never raises for what happens inside the child."""
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(cell, child_conn), daemon=True)
    started = time.monotonic()
    proc.start()
    child_conn.close()
    try:
        result = _wait(proc, parent_conn, timeout_s)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent_conn.close()
    if result is not None:
        return result
    elapsed = time.monotonic() - started
    if proc.exitcode is None or elapsed >= timeout_s:
        status, kind = STATUS_TIMEOUT, "Timeout"
        message = f"no result after {timeout_s:g}s; the child process was killed"
        hint = "raise --timeout, or check the backend for a hang"
    else:
        how = (
            f"killed by {_signal_name(proc.exitcode)}"
            if proc.exitcode < 0
            else f"exited with code {proc.exitcode}"
        )
        status, kind = STATUS_CRASHED, "Crash"
        message = f"the backend's process {how} before reporting a result"
        hint = "run with --no-isolate --debug to see where"
    failed = base_cell(cell)
    failed.update(status=status, error={"type": kind, "message": message, "hint": hint})
    return failed


def _wait(proc: Any, conn: Connection, timeout_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if conn.poll(min(remaining, 0.2)):
            try:
                return conn.recv()
            except EOFError:
                return None
        if not proc.is_alive() and not conn.poll(0):
            return None
