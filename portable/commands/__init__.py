"""One module per CLI command; each exposes `command`. Shared bits for them live here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from portable import registry


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


def split_backend_options(
    items: Sequence[str], backends: Sequence[str]
) -> dict[str, dict[str, str]]:
    """`-o [BACKEND:]KEY=VALUE` into per-backend option maps (no prefix: every backend)."""
    per_backend: dict[str, dict[str, str]] = {name: {} for name in backends}
    for item in items:
        target, assignment = item.split(":", 1) if ":" in item.partition("=")[0] else ("", item)
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected [BACKEND:]KEY=VALUE", param_hint="-o")
        names = [registry.canonical_name(target)] if target else list(backends)
        for name in names:
            if name not in per_backend:
                raise click.BadParameter(f"{item!r}: {target} is not a --backend of this run",
                                         param_hint="-o")
            per_backend[name][key.strip()] = value.strip()
    return per_backend


def preset_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--set KEY=VALUE` and `--dispatch`: how a reference preset is varied (export, bench)."""
    from portable import reference

    command = click.option(
        "--dispatch", type=click.Choice(reference.dispatches()), default=None,
        help="MoE dispatch of a preset: sparse (only chosen experts run), dense (all experts) "
             "or fused (ONNX Runtime's com.microsoft::MoE op; ORT backends only).",
    )(command)
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a preset's config field, e.g. --set num_experts=64. Repeatable.",
    )(command)
