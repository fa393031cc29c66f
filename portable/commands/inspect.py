"""`portable inspect`: a model's signature, ops and size, and which backends can run it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from portable import registry
from portable.commands import BackendOption, stderr
from portable.errors import BackendNotFound

OPTIONAL_SHOWN = 20
"""Optional inputs (initializers a caller may override) listed before "… N more"."""

if TYPE_CHECKING:
    from portable.inspection import BackendSupport, ModelSummary


def _print(summary: ModelSummary, support: Sequence[BackendSupport], collapse: bool) -> None:
    from rich.table import Table

    from portable.escape import markup as escape
    from portable.escape import terminal
    from portable.shapes import shape_text
    from portable.tables import print_table

    click.echo(f"model      {terminal(summary.path)}")
    click.echo(f"ir / opset ir {summary.ir_version} · "
               + terminal(", ".join(f"{d} {v}" for d, v in summary.opsets.items())))
    if summary.producer:
        click.echo(f"producer   {terminal(summary.producer)}")
    click.echo(f"parameters {summary.parameters:,} ({summary.parameter_bytes / 2**20:.2f} MiB"
               + (", external data" if summary.external_data else "") + ")")
    tensors = Table(title="inputs and outputs", title_justify="left")
    for header in ("kind", "name", "dtype", "shape"):
        tensors.add_column(header)
    for kind, specs in (("input", summary.inputs), ("optional input", summary.optional_inputs),
                        ("output", summary.outputs)):
        shown = specs if kind != "optional input" else specs[:OPTIONAL_SHOWN]
        for spec in shown:
            tensors.add_row(kind, escape(spec.name), escape(spec.dtype),
                            escape(shape_text(spec.shape)))
        if len(shown) < len(specs):
            tensors.add_row(kind, f"… {len(specs) - len(shown)} more (--json lists all)", "", "")
    print_table(tensors)
    ops = Table(title="ops", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, count in summary.ops.items():
        ops.add_row(escape(op), str(count))
    print_table(ops)
    backends = Table(title="backends: can every op run?", title_justify="left")
    for header in ("backend", "verdict", "detail"):
        backends.add_column(header)
    for row in support:
        if row.verdict != "unavailable" or not collapse:
            backends.add_row(escape(row.backend), row.verdict, escape(row.detail))
    unavailable = [row.backend for row in support if row.verdict == "unavailable" and collapse]
    if unavailable:
        backends.add_row(escape(", ".join(unavailable)), "unavailable",
                         "not usable here: `portable backends` says why")
    print_table(backends)


@click.command("inspect")
@click.argument("model")
@click.option("-b", "--backend", "backend_names", multiple=True, cls=BackendOption,
              help="Backend to ask (repeatable). Default: every installed and known backend.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(model: str, backend_names: tuple[str, ...], as_json: bool) -> None:
    """Show a model's inputs, outputs, opset, ops, size, and which backends can run every op.

    A backend says "yes" only when its runtime places every op of this model
    (OpenVINO's query_model) or lists an implementation of every op type (ONNX
    Runtime), "unknown" when it can say neither. Backends not usable on this
    machine share one line unless named with -b; optional inputs beyond 20 are
    counted, not listed (--json lists everything). MODEL is an .onnx file or a
    reference preset.

    \b
    Examples:
      portable inspect model.onnx
      portable inspect model.onnx -b cpu -b openvino --json
    """
    from portable.inspection import backend_support, summarize
    from portable.modelsource import resolve

    source = resolve(model, progress=stderr)
    summary = summarize(source.path)
    names: list[str] = []
    if backend_names:
        names = list(dict.fromkeys(registry.canonical_name(b) for b in backend_names))
        known = registry.installed_names()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise BackendNotFound(unknown[0], [*known, *registry.aliases()])
    support = backend_support(summary, names or registry.installed_names(),
                              skip_hidden=not backend_names)
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), "backends": [s.to_dict() for s in support]},
                              indent=1))
    else:
        _print(summary, support, collapse=not backend_names)
