"""`portable report`: result files as a self-contained HTML page or Markdown, with plots."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from portable import errors
from portable.commands import CliError, stderr
from portable.commands.params import SafePath

SUFFIXES = (".html", ".md")


@click.command("report")
@click.argument("files", nargs=-1, required=True, type=SafePath())
@click.option("--output", type=SafePath(), required=True,
              help="report.html (one self-contained page) or report.md (PNGs beside it). "
                   "No short form: -o means --option in every command.")
def command(files: tuple[Path, ...], output: Path) -> None:
    """Render result files as a report: what each run was, a summary with each
    backend's speedup against the file's first backend, generation and precision
    tables where the runs have them, every cell with a short status, and plots.

    Each file is one run (#1, #2, ... in the order given), so repeated runs stay
    apart. Backends that could not run here are listed once with the reason.
    Plots, per scenario: latency distribution, throughput vs batch (for a sweep),
    server p99 per trial rate (--find-peak), generation tokens/s vs TPOT (for a
    batch list); then MoE scaling, expert load (one plot per model) and parity.
    Every file is checked against the result schema before anything is written.

    \b
    Examples:
      portable report results/*.json --output report.html
      portable report base.json new.json --output report.md
    """
    from portable.results import load

    if output.suffix not in SUFFIXES:
        raise CliError(f"{output}: the report must end in .html or .md", errors.EXIT_USAGE)
    if importlib.util.find_spec("matplotlib") is None:
        raise CliError("report needs matplotlib (pip install 'portable[analysis]')",
                       errors.EXIT_UNAVAILABLE)
    documents = [load(path) for path in files]
    from portable.report import write_report

    try:
        written = write_report(documents, output, [path.name for path in files])
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}", errors.EXIT_USAGE) from None
    stderr(f"report: {written[0]}" + (f" (+{len(written) - 1} images)" if len(written) > 1 else ""))
