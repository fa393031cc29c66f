"""One module per CLI command; each exposes `command`. Shared bits for them live here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class CliError(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def stderr(message: str) -> None:
    click.echo(message, err=True)




@contextlib.contextmanager
def progress_bar(total: int, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """Yields ``advance(label)``, called as each of `total` steps starts.

    A rich progress bar on stderr when stderr is a terminal; one plain line per step
    when it is not (logs, CI); nothing under `quiet` (--json).
    """
    if quiet:
        yield lambda label: None
        return
    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda label: stderr(f"bench {label} ...")
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=total)
        started = False

        def advance(label: str) -> None:
            nonlocal started
            progress.update(task, description=label, advance=1 if started else 0)
            started = True

        yield advance
        progress.update(task, advance=1)
