"""`portable check`: the same inputs through several backends, outputs compared with the first."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from portable import errors, registry
from portable.commands import stderr
from portable.commands.params import SafePath
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
                             f"{out['max_rel_error']:.2e}",
                             f"{out['tolerance']:.0e}" if out["tolerance"] else "exact",
                             str(out["mismatched"]), str(out["nonfinite"]),
                             verdict + (f" ({out['note']})" if out["note"] else "")))
            if report.get("note"):
                rows.append((label, "-", "-", "-", "-", "-", "-", "-", f"FAIL ({report['note']})"))
            if report.get("precision"):  # below fp32 these rules decide, not the rows above
                verdict = report["precision"]
                rows.append((label, f"all ({verdict['precision']} rules)", "-", "-", "-", "-",
                             "-", "-", verdict["summary"]))
    return rows


TOLERANCE_NOTE = ("tolerance (abs/rel): an element passes when |actual - reference| <= "
                  "tol * max(1, |reference|): absolute below 1, relative above; "
                  "integer and bool outputs must match exactly")


def _print_rows(title: str, rows: Sequence[tuple[str, ...]]) -> None:
    from rich.table import Table

    from portable.escape import markup as escape
    from portable.tables import print_table

    table = Table(title=escape(title), title_justify="left", caption=TOLERANCE_NOTE,
                  caption_justify="left")
    for header in ("backend", "output", "dtype", "max abs", "max rel", "tolerance (abs/rel)",
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
@click.option("--reference-model", type=SafePath(), default=None,
              help="The original of a converted or quantized --model: both run on the same "
                   "inputs on each backend, compared by the converted model's precision rules.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@run_options()
def command(model: str, batch: int, seq: int, reference_model: Path | None, as_json: bool,
            **params: Any) -> None:
    """Check that backends agree: same inputs, outputs compared with the first backend's.

    Every backend (at least two; the first is the reference) runs the model once on
    the same seeded (or supplied) inputs. Each output is compared with the first
    backend's at a tolerance that follows its dtype (exact for integers and bools);
    NaN and Inf are counted. Exit 1 when any output disagrees.

    With --reference-model, each backend runs both models on the same inputs and
    the converted one is judged against its original: per-dtype tolerance, top-1
    agreement and distance for logit-like outputs, routing agreement when both
    expose expert_ids, by the rules of its precision (a file says it in its
    portable.precision metadata).

    \b
    Examples:
      portable check --model my.onnx -b openvino -b ort-cpu
      portable check --model my.onnx -b cpu -b cuda --dim frames=300 --json
      portable check --model q.onnx --reference-model f.onnx -b cpu
    """
    from portable.modelsource import resolve
    from portable.run import execute, finalize, finalize_against, plan, plan_against

    backends = {registry.canonical_name(b) for b in params["backend_names"]}
    if len(backends) < 2 and reference_model is None:
        raise click.UsageError("check compares backends: give at least two --backend "
                               "(or a --reference-model)")
    settings = settings_from(params, batch=batch, seq=seq, warmup=0, iterations=1,
                             min_duration_s=0.0)
    chosen = launcher_for(params, on_progress=stderr)
    request = build_request("check", model, params, lambda: resolve(model, progress=stderr),
                            settings)
    original = resolve(str(reference_model)) if reference_model else None
    items = plan_against(request, original) if original else plan(request)
    execution = execute(items, chosen,
                        on_start=lambda item: stderr(f"check {item.backend} · "
                                                     f"{item.model.name} ..."))
    outcome = (finalize_against(request, original, execution) if original
               else finalize(request, execution))
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
        reference = next((r.cross_parity["reference"].removesuffix(" outputs")
                          for r in outcome.results if r.cross_parity),
                          "none (fewer than two backends ran)")
        _print_rows(f"portable check · {request.model.name} · reference: {reference}",
                    _rows(outcome.document["results"]))
    sys.exit(outcome.exit_code)
