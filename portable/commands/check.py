"""`portable check`: the same inputs through several backends, outputs compared with the first."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from portable import errors, registry
from portable.commands import exit_code_for, split_backend_options, stderr
from portable.commands.inputopts import input_options, input_spec, preflight
from portable.commands.params import FiniteFloat, Seed, Threads


def _rows(cells: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per backend and output: errors, tolerance, mismatches, NaN/Inf, verdict."""
    from portable.crosscheck import cell_label

    rows: list[tuple[str, ...]] = []
    for cell in cells:
        label = cell_label(cell)
        report = cell.get("cross_parity")
        if cell["status"] != "ok":
            rows.append((label, "-", "-", "-", "-", "-", "-", "-",
                         f"{cell['status']}: {cell['error']['message']}"))
        elif report is None:
            rows.append((label, "-", "-", "-", "-", "-", "-", "-", "not compared"))
        elif report["role"] == "reference":
            for name, count in report["nonfinite"].items():
                rows.append((label, name, "-", "-", "-", "-", "-", str(count), "reference"))
        else:
            for name, out in report["outputs"].items():
                verdict = "pass" if out["passed"] else "FAIL"
                rows.append((label, name, out["dtype"], f"{out['max_abs_error']:.2e}",
                             f"{out['max_rel_error']:.2e}", f"{out['tolerance']:.0e}",
                             str(out["mismatched"]), str(out["nonfinite"]),
                             verdict + (f" ({out['note']})" if out["note"] else "")))
            if report.get("note"):
                rows.append((label, "-", "-", "-", "-", "-", "-", "-", f"FAIL ({report['note']})"))
    return rows


def _print_rows(title: str, rows: Sequence[tuple[str, ...]]) -> None:
    from rich.table import Table

    from portable.escape import markup as escape
    from portable.tables import print_table

    table = Table(title=escape(title), title_justify="left")
    for header in ("backend", "output", "dtype", "max abs", "max rel", "tolerance",
                   "mismatched", "NaN/Inf", "verdict"):
        table.add_column(header)
    for row in rows:
        table.add_row(*(escape(text) for text in row))
    print_table(table)


@click.command("check")
@click.option("-b", "--backend", "backend_names", multiple=True, required=True,
              help="Backend (repeatable, at least two); the first one is the reference.")
@click.option("-m", "--model", default="moe-tiny", show_default=True,
              help="A reference preset or a path to an .onnx file.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size, for dims named or placed like one.")
@click.option("--seq", type=click.IntRange(min=1), default=128, show_default=True,
              help="Sequence length, for dims named or placed like one.")
@click.option("--seed", type=Seed(), default=0, show_default=True,
              help="Seed for generated inputs.")
@click.option("--threads", type=Threads(), default=None,
              help="Intra-op threads for every backend.")
@click.option("-o", "--option", "option_items", multiple=True, metavar="[BACKEND:]KEY=VALUE",
              help="Backend option, e.g. -o ort-cpu:graph_optimization_level=disable.")
@click.option("--timeout", type=FiniteFloat(min=0, min_open=True), default=900.0,
              show_default=True, help="Seconds a backend may take before it is killed.")
@click.option("--isolate/--no-isolate", default=True, show_default=True,
              help="Run each backend in its own process.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@input_options
def command(backend_names: tuple[str, ...], model: str, batch: int, seq: int, seed: int,
            threads: int | None, option_items: tuple[str, ...], timeout: float, isolate: bool,
            as_json: bool, shapes: tuple[str, ...], dims: tuple[str, ...],
            values: tuple[str, ...], npz: Path | None) -> None:
    """Check that backends agree: same inputs, outputs compared with the first backend's.

    Every backend runs the model once on the same seeded (or supplied) inputs.
    Each output is compared with the first backend's at a tolerance that follows
    its dtype (exact for integers and bools); NaN and Inf are counted. Exit 1
    when any output disagrees.

    \b
    Examples:
      portable check --model my.onnx -b openvino -b ort-cpu
      portable check --model my.onnx -b cpu -b cuda --dim frames=300 --json
    """
    from portable.crosscheck import cross_check
    from portable.harness import BenchSettings, Cell, run_cell
    from portable.isolation import run_isolated
    from portable.modelsource import resolve

    names = list(dict.fromkeys(registry.canonical_name(b) for b in backend_names))
    if len(names) < 2:
        raise click.UsageError("check compares backends: give at least two --backend")
    per_backend = split_backend_options(option_items, names)
    for name in names:
        with contextlib.suppress(errors.BackendUnavailable, errors.AdapterLoadError):
            registry.create(name, per_backend[name])
    source = resolve(model)
    given = input_spec(shapes, dims, values, npz)
    preflight("check", model, backend_names, source.path, batch, seq, given)
    settings = BenchSettings(batch=batch, seq=seq, warmup=0, iterations=1, min_duration_s=0.0,
                             threads=threads, seed=seed)
    cells = []
    for name in names:
        stderr(f"check {name} · {source.name} ...")
        cell = Cell(name, per_backend[name], source, settings, inputs=given, keep_outputs=True)
        cells.append(run_isolated(cell, timeout) if isolate else run_cell(cell))
    cross_check(cells)
    code = exit_code_for(cells)
    if as_json:
        keys = ("backend", "options", "status", "error", "device", "inputs", "cross_parity")
        click.echo(json.dumps({
            "model": source.to_dict(),
            "input_spec": given.to_dict(),
            "passed": code == errors.EXIT_OK,
            "results": [{key: cell.get(key) for key in keys} for cell in cells],
        }, indent=1))
    else:
        reference = next((c["cross_parity"]["reference"] for c in cells
                          if (c.get("cross_parity") or {}).get("role") == "reference"),
                         "none (fewer than two backends ran)")
        _print_rows(f"portable check · {source.name} · reference: {reference}", _rows(cells))
    if code:
        sys.exit(code)
