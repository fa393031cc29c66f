"""Launchers: where work items run. Each takes items and yields one result per item, in order.

- `InlineLauncher`: in this process (`--no-isolate`): for debugging; a crash takes the
  run down and a hang cannot be stopped, so it refuses a timeout rather than ignore it.
- `ProcessLauncher`: each item in a fresh ``spawn``ed child process with a timeout, so a
  crashing or hanging runtime costs one result (status ``crashed`` or ``timeout``).

A launcher that ships items to other machines implements the same `launch`; the
pipeline (`portable.run`) only iterates what it yields. On KeyboardInterrupt a
launcher stops its work and lets the exception through; results already yielded
are kept by the caller.
"""

from __future__ import annotations

import abc
import contextlib
import multiprocessing
import sys
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from portable.childexit import describe_exit
from portable.errors import PortableError
from portable.harness import WorkItem, error_info, run_work_item
from portable.records import CellResult, ErrorInfo, Status


class Launcher(abc.ABC):
    name: str

    @abc.abstractmethod
    def launch(self, items: Iterable[WorkItem]) -> Iterator[CellResult]:
        """Run `items`, yielding each one's result as it completes (in the items' order)."""


class InlineLauncher(Launcher):
    name = "inline"

    def __init__(self, timeout_s: float | None = None):
        if timeout_s is not None:
            raise PortableError(
                "a timeout needs isolation: an in-process run cannot be stopped safely; "
                "drop --no-isolate or --timeout")

    def launch(self, items: Iterable[WorkItem]) -> Iterator[CellResult]:
        for item in items:
            yield run_work_item(item)


class ProcessLauncher(Launcher):
    name = "process"

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def launch(self, items: Iterable[WorkItem]) -> Iterator[CellResult]:
        for item in items:
            yield run_in_child(item, self.timeout_s)


def _child(item: WorkItem, conn: Connection) -> None:
    try:
        conn.send(run_work_item(item))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it is
        conn.send(item.empty_result().fail(Status.ERROR, error_info(exc, with_traceback=True)))
    finally:
        conn.close()


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Start children without re-running the caller's script in them.

    ``spawn`` re-imports a script that is ``__main__`` in every child (so a three-line
    script without an ``if __name__ == "__main__"`` guard would run again there). The
    child only needs `portable.launchers`, so the script's path is hidden while the
    child's preparation data is taken.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def run_in_child(item: WorkItem, timeout_s: float) -> CellResult:
    """`run_work_item` in a spawned child; never raises for what happens inside the child."""
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(item, child_conn), daemon=True)
    started = time.monotonic()
    with _main_not_reimported():
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
        return item.empty_result().fail(Status.TIMEOUT, ErrorInfo(
            "Timeout", f"no result after {timeout_s:g}s; the child process was killed",
            "raise --timeout, or check the backend for a hang"))
    how = describe_exit(proc.exitcode)
    return item.empty_result().fail(Status.CRASHED, ErrorInfo(
        "Crash", f"the backend's process {how} before reporting a result",
        "run with --no-isolate --debug to see where"))


def _wait(proc: Any, conn: Connection, timeout_s: float) -> CellResult | None:
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
