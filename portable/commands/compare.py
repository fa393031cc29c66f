"""`portable compare`: did NEW regress against BASE? For CI gates."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import click
from rich.table import Table

from portable import errors
from portable.commands import CliError
from portable.commands.params import FiniteFloat, SafePath
from portable.escape import markup as escape


class Percent(click.ParamType):
    """`5%` or `5` (percent) into the fraction 0.05."""

    name = "PERCENT"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip().removesuffix("%")
        try:
            fraction = float(text) / 100
        except ValueError:
            self.fail(f"{value!r}: expected a percentage such as 5%", param, ctx)
        if not 0 <= fraction < 10:
            self.fail(f"{value!r}: expected a percentage between 0% and 1000%", param, ctx)
        return fraction


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _table(changes: list, threshold: float) -> Table:
    table = Table(title=f"portable compare · threshold {threshold:.1%}", title_justify="left")
    for header in ("backend", "scenario", "batch×seq", "p50", "p99", "samples/s", "p-value",
                   "verdict"):
        table.add_column(header, justify="right" if header in {"p50", "p99", "samples/s",
                                                               "p-value"} else "left")
    for c in changes:
        verdict = f"[red]{escape(c.verdict)}[/red]" if c.regression else escape(c.verdict)
        p_value = "-" if c.p_value is None else f"{c.p_value:.2g}"
        table.add_row(escape(c.backend), escape(c.scenario), f"{c.batch}×{c.seq}",
                      _pct(c.p50_change), _pct(c.p99_change), _pct(c.throughput_change),
                      p_value, verdict)
    return table


@click.command("compare")
@click.argument("base", type=SafePath())
@click.argument("new", type=SafePath())
@click.option("--threshold", type=Percent(), default="5%", show_default=True,
              help="Smallest p50 slow-down (or throughput drop) that counts as a regression.")
@click.option("--alpha", type=FiniteFloat(0, 1, min_open=True, max_open=True),
              default=0.01, show_default=True,
              help="Significance level of the Mann-Whitney U test on raw latencies.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def command(base: Path, new: Path, threshold: float, alpha: float, as_json: bool) -> None:
    """Compare two result files of one model, cell by cell (backend, scenario, batch, seq).

    A cell regresses when its latencies differ significantly (two-sided Mann-Whitney
    U test on the raw latencies, p < --alpha) and its p50 is slower, or its
    throughput lower, by more than --threshold; or when it ran in BASE and failed
    in NEW. Exit codes: 0 no regression, 1 a regression, 2 unreadable files or
    results of different models.

    \b
    Examples:
      portable compare results/base.json results/new.json
      portable compare base.json new.json --threshold 10% --json
    """
    from portable.compare import compare_documents
    from portable.results import load

    if importlib.util.find_spec("scipy") is None:
        raise CliError("compare needs scipy (pip install 'portable[analysis]')",
                       errors.EXIT_UNAVAILABLE)
    changes = compare_documents(load(base), load(new), threshold, alpha)
    regressions = [c for c in changes if c.regression]
    if as_json:
        click.echo(json.dumps({"threshold": threshold, "alpha": alpha,
                               "regression": bool(regressions),
                               "cells": [c.to_dict() for c in changes]}, indent=1))
    else:
        from portable.tables import print_table

        print_table(_table(changes, threshold))
    if regressions:
        click.echo(f"{len(regressions)} regression(s) beyond {threshold:.1%}", err=True)
        sys.exit(errors.EXIT_CHECK_FAILED)
