"""`portable compare`: did NEW regress against BASE? For CI gates."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from portable import errors
from portable.commands import CliError
from portable.commands.params import FiniteFloat, SafePath
from portable.escape import markup as escape

if TYPE_CHECKING:
    from portable.compare import CellChange, Figure


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


def _moved(figure: Figure | None, spec: str) -> str:
    """``base → new (+x%)`` of a timing figure; agreements change in percentage points."""
    if figure is None:
        return "-"
    text = f"{format(figure.base, spec)} → {format(figure.new, spec)}"
    return f"{text} ({figure.change:+.1%})" if figure.change is not None else text


def _points(figure: Figure | None) -> str:
    """``base → new (+x pt)`` of an agreement (a fraction)."""
    if figure is None:
        return "-"
    return f"{figure.base:.1%} → {figure.new:.1%} ({100 * (figure.change or 0.0):+.1f} pt)"


def _new_table(title: str, columns: list[str], caption: str = "base → new (change)") -> Table:
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for header in columns:
        numeric = header.endswith(("ms", "/s", "agreement", "match")) or header == "p-value"
        table.add_column(header, justify="right" if numeric else "left")
    return table


def _where(c: CellChange) -> list[str]:
    return [escape(c.backend), escape(c.scenario), f"{c.batch}×{c.seq}"]


def tables(changes: list[CellChange], threshold: float) -> list[Table]:
    """The timing table; and a generation and an agreement table where cells have those."""
    main = _new_table(f"portable compare · threshold {threshold:.1%}",
                      ["backend", "scenario", "batch×seq", "p50 ms", "p99 ms", "samples/s",
                       "p-value", "verdict"],
                      "base → new (change); p-value: Mann-Whitney U test on the raw latencies")
    for c in changes:
        f = c.figures
        verdict = f"[red]{escape(c.verdict)}[/red]" if c.regression else escape(c.verdict)
        main.add_row(*_where(c), _moved(f.get("p50_ms"), ".3f"), _moved(f.get("p99_ms"), ".3f"),
                     _moved(f.get("samples_per_s"), ".1f"),
                     "-" if c.p_value is None else f"{c.p_value:.2g}", verdict)
    found = [main]
    generated = [c for c in changes if "tpot_p50_ms" in c.figures]
    if generated:
        table = _new_table("generation", ["backend", "scenario", "batch×seq", "TTFT p50 ms",
                                          "TPOT p50 ms", "output tokens/s", "token match"])
        for c in generated:
            f = c.figures
            table.add_row(*_where(c), _moved(f.get("ttft_p50_ms"), ".3f"),
                          _moved(f.get("tpot_p50_ms"), ".3f"),
                          _moved(f.get("output_tokens_per_s"), ".1f"),
                          _points(f.get("token_match")))
        found.append(table)
    judged = [c for c in changes if {"expert_agreement", "top1_agreement"} & c.figures.keys()]
    if judged:
        table = _new_table("precision agreement", ["backend", "scenario", "batch×seq",
                                                   "expert agreement", "top-1 agreement"])
        for c in judged:
            table.add_row(*_where(c), _points(c.figures.get("expert_agreement")),
                          _points(c.figures.get("top1_agreement")))
        found.append(table)
    return found


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

    Each figure is shown as base → new (change): p50, p99 and samples/s; for the
    generate scenario TTFT p50, TPOT p50 and output tokens/s; with reduced-precision
    verdicts in both files, expert and top-1 agreement (and token match). A cell
    regresses when its latencies differ significantly (two-sided Mann-Whitney U test
    on the raw latencies, p < --alpha) and its p50 is slower, or its throughput
    lower, by more than --threshold; when it ran in BASE and failed in NEW; or when
    its precision verdict went from pass to fail. Files of different scenarios (a
    latency run and a throughput run) or with no matching cell compare nothing.
    Exit codes: 0 no regression, 1 a regression, 2 unreadable files, different
    models or scenarios, or no matching cell.

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

        for table in tables(changes, threshold):
            print_table(table)
    if regressions:
        click.echo(f"{len(regressions)} regression(s) beyond {threshold:.1%}", err=True)
        sys.exit(errors.EXIT_CHECK_FAILED)
