"""The `portable` command line.

Exit codes: 0 ok · 1 a check failed (parity, regression, conformance) · 2 usage
error, unknown backend, bad model or inputs · 3 backend unavailable · 4 backend
crashed or timed out · 5 internal error in portable itself (a bug: please report)
· 130 interrupted by Ctrl-C (bench keeps the completed cells).
Results go to stdout (pure JSON with --json); logs and progress go to stderr.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click

import portable
from portable import errors
from portable.commands import CliError, add_logging_options, configure_logging
from portable.runtimelog import ENV_DEBUG

EXIT_INTERNAL = 5

log = logging.getLogger("portable")


class PortableGroup(click.Group):
    """Turns PortableError into one line on stderr and its exit code (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.PortableError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise CliError(str(exc), exc.exit_code) from None
        except (KeyboardInterrupt, click.Abort):
            raise CliError("interrupted", errors.EXIT_INTERRUPTED) from None
        except (click.ClickException, click.exceptions.Exit):
            raise
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise CliError(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                EXIT_INTERNAL,
            ) from None


@click.group(cls=PortableGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(portable.__version__, prog_name="portable")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Run one model on many accelerator stacks: does it run, does it agree, how fast.

    \b
    Examples:
      portable backends
      portable bench --backend cpu
      portable bench --backend cpu --backend torch --model moe-tiny --batch 2 --seq 64
      portable bench --backend cpu --model path/to/model.onnx --json
      portable export --model moe-tiny --output moe-tiny.onnx
      portable inspect path/to/model.onnx
      portable check --model path/to/model.onnx --backend openvino --backend cpu

    Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 backend unavailable,
    4 backend crashed or timed out, 5 internal error, 130 interrupted.
    """
    configure_logging(debug, verbose)
    ctx.obj = {"debug": debug}
    if debug:  # child processes (isolated cells, probes) keep tracebacks and runtime logs too
        os.environ[ENV_DEBUG] = "1"


def _register_commands() -> None:
    """Each command lives in its own module under portable.commands."""
    from portable.commands import (
        backends,
        bench,
        calibrate,
        check,
        compare,
        conformance,
        export,
        export_results,
        inspect,
        report,
    )

    for module in (backends, bench, calibrate, check, compare, conformance, export,
                   export_results, inspect, report):
        cli.add_command(add_logging_options(module.command))


_register_commands()


def main() -> None:
    """The console script: stdout errors end with one line; a late Ctrl-C loses nothing."""
    from portable.commands.stdio import StdoutError, guard_stdout

    guard_stdout()
    try:
        try:
            cli(prog_name="portable")
        finally:
            # the work is done: a Ctrl-C while the interpreter shuts down must not kill it
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            sys.stdout.flush()
    except StdoutError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
