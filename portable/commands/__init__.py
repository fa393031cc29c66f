"""One module per CLI command; each exposes `command`. Shared bits for them live here."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
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


class BackendOption(click.Option):
    """``-b/--backend`` whose help ends with the backends installed here and their aliases.

    The names come from the registry's entry points, and the aliases from the adapter
    classes, only when help is shown (no vendor SDK is imported), so the listing
    includes vendor plugins too.
    """

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        installed = registry.installed_names()
        aliases = [f"{alias}={name}" for alias, name in registry.aliases().items()
                   if name in installed]
        names = ", ".join(installed) + (f" (aliases: {', '.join(aliases)})" if aliases else "")
        return record[0], f"{record[1]} Installed: {names}."


def configure_logging(debug: bool, verbose: int, lower_only: bool = False) -> None:
    """Log to stderr: warnings by default, -v info, -vv or --debug everything.

    `lower_only`: a subcommand's flags may only add to what the group's asked for.
    """
    level = logging.DEBUG if debug or verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(min(root.level, level) if lower_only else level)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from portable.runtimelog import ENV_DEBUG

        ctx.ensure_object(dict)["debug"] = True  # shared with the group: tracebacks too
        os.environ[ENV_DEBUG] = "1"  # child processes (cells, probes) keep tracebacks too
        configure_logging(True, 0, lower_only=True)


def _set_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        configure_logging(False, value, lower_only=True)


def add_logging_options(command: click.Command) -> click.Command:
    """Give a subcommand the group's ``--debug`` and ``-v``, so they work after its name too
    (``portable bench -v`` as well as ``portable -v bench``)."""
    command.params.extend([
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_debug,
                     help="Show full tracebacks and debug logs (also before the command)."),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_set_verbose,
                     help="More log output on stderr (-vv for debug; also before the command)."),
    ])
    return command


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
