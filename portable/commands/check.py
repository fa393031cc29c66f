"""`portable check`: the same inputs through several backends, outputs compared with the first."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from portable import errors, registry
from portable.commands import stderr
from portable.commands.runopts import build_request, launcher_for, run_options, settings_from


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
    from rich.markup import escape
    from rich.table import Table

    from portable.tables import print_table

    table = Table(title=title, title_justify="left")
    for header in ("backend", "output", "dtype", "max abs", "max rel", "tolerance",
                   "mismatched", "NaN/Inf", "verdict"):
        table.add_column(header)
    for row in rows:
        table.add_row(*(escape(text) for text in row))
    print_table(table)


@click.command("check")
@click.option("-m", "--model", default="moe-tiny", show_default=True,
              help="A reference preset or a path to an .onnx file.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size, for dims named or placed like one.")
@click.option("--seq", type=click.IntRange(min=1), default=128, show_default=True,
              help="Sequence length, for dims named or placed like one.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@run_options()
def command(model: str, batch: int, seq: int, as_json: bool, **params: Any) -> None:
    """Check that backends agree: same inputs, outputs compared with the first backend's.

    Every backend (at least two; the first is the reference) runs the model once on
    the same seeded (or supplied) inputs. Each output is compared with the first
    backend's at a tolerance that follows its dtype (exact for integers and bools);
    NaN and Inf are counted. Exit 1 when any output disagrees.

    \b
    Examples:
      portable check --model my.onnx -b openvino -b ort-cpu
      portable check --model my.onnx -b cpu -b cuda --dim frames=300 --json
    """
    from portable.modelsource import resolve
    from portable.run import execute, finalize, plan

    if len({registry.canonical_name(b) for b in params["backend_names"]}) < 2:
        raise click.UsageError("check compares backends: give at least two --backend")
    settings = settings_from(params, batch=batch, seq=seq, warmup=0, iterations=1,
                             min_duration_s=0.0)
    chosen = launcher_for(params, on_progress=stderr)
    request = build_request("check", model, params, lambda: resolve(model), settings)
    items = plan(request)
    execution = execute(items, chosen,
                        on_start=lambda item: stderr(f"check {item.backend} · "
                                                     f"{request.model.name} ..."))
    outcome = finalize(request, execution)
    if as_json:
        keys = ("backend", "options", "status", "error", "device", "inputs", "cross_parity")
        click.echo(json.dumps({
            "model": outcome.document["model"],
            "input_spec": request.inputs.to_dict(),
            "passed": outcome.exit_code == errors.EXIT_OK,
            "results": [{key: cell.get(key) for key in keys}
                        for cell in outcome.document["results"]],
        }, indent=1))
    else:
        reference = next((r.cross_parity["reference"] for r in outcome.results
                          if (r.cross_parity or {}).get("role") == "reference"),
                         "none (fewer than two backends ran)")
        _print_rows(f"portable check · {request.model.name} · reference: {reference}",
                    _rows(outcome.document["results"]))
    sys.exit(outcome.exit_code)
