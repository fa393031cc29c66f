"""Launchers: where work items run. Each takes items and yields one result per item, in order.

- `InlineLauncher`: in this process (`--no-isolate`): for debugging; a crash takes the
  run down and a hang cannot be stopped, so it refuses a timeout rather than ignore it.
- `ProcessLauncher`: each item in a fresh ``spawn``ed child process with a timeout
  (`portable.childproc`), so a crashing or hanging runtime costs one result (status
  ``crashed`` or ``timeout``).

A launcher that ships items to other machines implements the same `launch`; the
pipeline (`portable.run`) only iterates what it yields. On KeyboardInterrupt a
launcher stops its work and lets the exception through; results already yielded
are kept by the caller.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator

from portable.childproc import OK, RAISED, TIMEOUT, call_in_child
from portable.errors import PortableError
from portable.harness import WorkItem, run_work_item
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


def run_in_child(item: WorkItem, timeout_s: float) -> CellResult:
    """`run_work_item` in a spawned child; never raises for what happens inside the child."""
    outcome = call_in_child(run_work_item, (item,), timeout_s)
    if outcome.kind == OK:
        return outcome.value
    if outcome.kind == RAISED:  # the harness records backend errors: this is portable's own
        return item.empty_result().fail(Status.ERROR, ErrorInfo("Error", outcome.detail))
    if outcome.kind == TIMEOUT:
        return item.empty_result().fail(Status.TIMEOUT, ErrorInfo(
            "Timeout", f"no result after {timeout_s:g}s; the child process was killed",
            "raise --timeout, or check the backend for a hang"))
    return item.empty_result().fail(Status.CRASHED, ErrorInfo(
        "Crash", f"the backend's process {outcome.detail} before reporting a result",
        "run with --no-isolate --debug to see where"))
