"""`portable backends`: what can run here, and why not."""

from __future__ import annotations

import json

import click


@click.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include hidden test backends (null).")
def command(as_json: bool, show_all: bool) -> None:
    """List every backend, whether it can run here, on what device, or why not.

    \b
    Examples:
      portable backends
      PORTABLE_BACKENDS=ort-cpu,torch portable backends --json
    """
    from portable.probe_isolated import survey

    rows = survey(include_hidden=show_all)
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=1))
        return
    from portable.tables import backends_table, print_table

    print_table(backends_table(rows))


