"""`portable export-results`: result files as one CSV table, one row per cell."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from portable import errors
from portable.commands import CliError
from portable.commands.params import SafePath


@click.command("export-results")
@click.argument("files", nargs=-1, required=True, type=SafePath())
@click.option("--output", type=SafePath(), default=None,
              help="CSV file to write (default: stdout). No short form: -o means --option "
                   "in every command.")
def command(files: tuple[Path, ...], output: Path | None) -> None:
    """Export result files as CSV: one row per cell (backend × scenario × batch).

    Every file is checked against the result schema first; nothing is written
    when one of them is unreadable. Latencies are in milliseconds.

    \b
    Examples:
      portable export-results results/*.json > results.csv
      portable export-results base.json new.json --output both.csv
    """
    from portable.escape import csv_cell
    from portable.results import CSV_COLUMNS, flat_row, load, write_text_atomic

    documents = [load(path) for path in files]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for document in documents:
        writer.writerows({key: csv_cell(value) for key, value in flat_row(document, cell).items()}
                         for cell in document["results"])
    if output is None:
        click.echo(buffer.getvalue(), nl=False)
        return
    try:
        write_text_atomic(output, buffer.getvalue())
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}", errors.EXIT_USAGE) from None
    click.echo(f"wrote {output}", err=True)
