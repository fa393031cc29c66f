"""`portable conformance`: does a backend keep the adapter contract?"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from portable import errors, registry
from portable.commands import BackendOption, stderr
from portable.escape import terminal

_EXIT = {"passed": errors.EXIT_OK, "failed": errors.EXIT_CHECK_FAILED,
         "unsupported": errors.EXIT_UNAVAILABLE, "not run": errors.EXIT_UNAVAILABLE,
         "crashed": errors.EXIT_CRASHED}


def _parse_options(items: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="-o")
        options[key.strip()] = value.strip()
    return options


def _print_report(doc: dict[str, Any]) -> None:
    click.echo(f"conformance · {doc['backend']}")
    said: set[str] = set()
    for clause in doc["contract"]:
        line = f"  {clause['outcome']:<11} {clause['name']}"
        message = clause["message"]
        if message and message in said:
            message = "(same reason)"
        said.add(clause["message"])
        click.echo(terminal(line + (f": {message}" if message else "")))
    nodes = doc["onnx_node_tests"]
    if nodes is not None:
        role = "required" if doc["onnx_node_tests_required"] else "informational"
        ran = nodes["passed"] + nodes["failed"]
        click.echo(f"  ONNX node tests for the reference model's ops ({role}): "
                   + (f"{nodes['passed']}/{ran} passed, {nodes['skipped']} skipped"
                      if ran else f"not run ({nodes['skipped']} skipped)"))
        for failure in nodes["failures"]:
            click.echo(terminal(f"    failed {failure['test']}: {failure['error']}"))
    for clause in doc["contract"]:
        if clause["outcome"] in ("crashed", "timeout"):
            click.echo(terminal(f"died: {clause['name']} ({clause['outcome']}: "
                                f"{clause['message']})"))
    click.echo(f"verdict: {doc['verdict']}")


@click.command("conformance")
@click.option("-b", "--backend", cls=BackendOption, required=True,
              help="Backend to check (name or alias).")
@click.option("-o", "--option", "option_items", multiple=True, metavar="KEY=VALUE",
              help="Backend option, e.g. -o precision_mode=must_keep_origin_dtype. Repeatable.")
@click.option("--preset", "presets", multiple=True, default=("moe-tiny",), show_default=True,
              help="Reference preset for parity (repeatable); every dispatch variant is checked.")
@click.option("--node-tests", type=click.Choice(["off", "report", "require"]), default="report",
              show_default=True,
              help="ONNX's backend node tests for the reference model's ops: skip them, "
                   "report the counts, or fail the run on any failure.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True),
              default=600.0, show_default=True,
              help="Seconds one case may run before it is killed and recorded as hung.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(backend: str, option_items: tuple[str, ...], presets: tuple[str, ...],
            node_tests: str, timeout_s: float, as_json: bool) -> None:
    """Check a backend against the adapter contract, parity and ONNX's node tests.

    Runs portable.testing.AdapterContract (the suite vendors subclass) on the
    backend, parity against PyTorch's golden outputs for every preset, MoE
    dispatch variant and golden case (decode 1x1 and 1x4, prefill 2x16), then
    ONNX's own node tests for the op types the reference model uses. Each runs in
    a child process: a case that crashes or hangs is named and ends the run.
    Exit 0 passed, 1 failed, 3 unsupported (no golden case is supported by this
    stack) or not run (nothing could run here), 4 a case crashed or hung.

    \b
    Examples:
      portable conformance --backend cpu
      portable conformance --backend openvino --node-tests require --json
    """
    from portable.conformance import check

    name = registry.canonical_name(backend)
    options = _parse_options(option_items)
    registry.create(name, options)  # unknown names and bad options end here (exit 2)
    stderr(f"conformance {name}: running the adapter contract ...")
    doc = check(name, options, presets, node_tests, timeout_s).to_dict()
    if as_json:
        click.echo(json.dumps(doc, indent=1))
    else:
        _print_report(doc)
    code = _EXIT[doc["verdict"]]
    if code:
        sys.exit(code)
