"""Calling a function in a fresh child process with a timeout: the one way portable runs code
it does not trust (a backend's work item, a vendor plugin's probe).

The child is started with ``spawn`` (a fresh interpreter: no torch or runtime state
inherited, its peak RSS its own) and sends back what `func` returned, or what it
raised. A child that dies or outlives the timeout is killed, and the outcome says so.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

OK, RAISED, TIMEOUT, DIED = "ok", "raised", "timeout", "died"


def describe_exit(code: int | None) -> str:
    """``killed by SIGSEGV``, ``exited with code 3``, or ``still running``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(frozen=True)
class ChildOutcome:
    kind: str
    """``ok``, ``raised`` (`detail` says what), ``timeout`` or ``died`` (`detail` says how)."""
    value: Any = None
    detail: str = ""


def call_in_child(func: Callable[..., Any], args: Sequence[Any],
                  timeout_s: float) -> ChildOutcome:
    """``func(*args)`` in a spawned child; never raises for what happens inside the child.

    `func` must be importable by name. Ctrl-C in the parent kills the child and goes on up.
    """
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(func, tuple(args), sender), daemon=True)
    started = time.monotonic()
    with _main_not_reimported():
        proc.start()
    sender.close()
    try:
        message = _wait(proc, receiver, timeout_s)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        receiver.close()
    if message is not None:
        kind, value = message
        return ChildOutcome(OK, value) if kind == OK else ChildOutcome(RAISED, detail=value)
    if proc.exitcode is None or time.monotonic() - started >= timeout_s:
        return ChildOutcome(TIMEOUT, detail=f"no answer after {timeout_s:g}s; killed")
    return ChildOutcome(DIED, detail=describe_exit(proc.exitcode))


def _child(func: Callable[..., Any], args: tuple[Any, ...], conn: Connection) -> None:
    try:
        conn.send((OK, func(*args)))
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent reports it
        conn.send((RAISED, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _wait(proc: Any, conn: Connection, timeout_s: float) -> tuple[str, Any] | None:
    """The child's message, or None when it died or the time ran out. Polls the process
    too: a grandchild holding the pipe open must not hide the child's death."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if conn.poll(min(remaining, 0.2)):
            try:
                return conn.recv()
            except (EOFError, OSError):
                return None
        if not proc.is_alive() and not conn.poll(0):
            return None


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Start children without re-running the caller's script in them.

    ``spawn`` re-imports a script that is ``__main__`` in every child (so a three-line
    script without an ``if __name__ == "__main__"`` guard would run again there). The
    child only needs the function's own module, so the script's path is hidden while
    the child's preparation data is taken.
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
