"""`portable bench`: one model, one or more backends, one result file."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from portable import errors, registry
from portable.commands import CliError, stderr
from portable.models.config import DISPATCHES


def _split_options(items: Sequence[str], backends: Sequence[str]) -> dict[str, dict[str, str]]:
    """`-o [BACKEND:]KEY=VALUE` into per-backend option maps (no prefix: every backend)."""
    per_backend: dict[str, dict[str, str]] = {name: {} for name in backends}
    for item in items:
        target, assignment = item.split(":", 1) if ":" in item.partition("=")[0] else ("", item)
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected [BACKEND:]KEY=VALUE", param_hint="-o")
        names = [registry.canonical_name(target)] if target else list(backends)
        for name in names:
            if name not in per_backend:
                raise click.BadParameter(f"{item!r}: {target} is not a --backend of this run",
                                         param_hint="-o")
            per_backend[name][key.strip()] = value.strip()
    return per_backend


def _exit_code(cells: Sequence[dict[str, Any]]) -> int:
    statuses = {cell["status"] for cell in cells}
    if statuses & {"crashed", "timeout", "error"}:
        return errors.EXIT_CRASHED
    if statuses & {"unavailable", "unsupported"}:
        return errors.EXIT_UNAVAILABLE
    if any(cell.get("parity") and not cell["parity"]["passed"] for cell in cells):
        return errors.EXIT_CHECK_FAILED
    return errors.EXIT_OK


def _output_path(output: Path | None, document: dict[str, Any]) -> Path:
    from portable.results import default_path

    if output is not None and output.suffix == ".json":
        return output
    return default_path(output or Path("results"), document)


def _check_writable(output: Path | None) -> None:
    """Fail before measuring, not after, when the result cannot be written."""
    folder = (output.parent if output and output.suffix == ".json" else output) or Path("results")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create {folder}: {exc.strerror or exc}"
        raise CliError(message, errors.EXIT_USAGE) from None
    if not os.access(folder, os.W_OK):
        raise CliError(f"cannot write results to {folder}: permission denied", errors.EXIT_USAGE)


@click.command("bench")
@click.option("-b", "--backend", "backend_names", multiple=True, default=("cpu",),
              show_default=True, help="Backend to run (repeatable): cpu, torch, openvino, cuda.")
@click.option("-m", "--model", default="moe-tiny", show_default=True,
              help="A reference preset (moe-tiny, moe-small, moe-base) or a path to an .onnx file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a preset's config field (repeatable).")
@click.option("--dispatch", type=click.Choice(DISPATCHES), default=None,
              help="MoE dispatch for a preset (fused: ONNX Runtime's com.microsoft::MoE, "
                   "ORT backends only).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seq", type=click.IntRange(min=1), default=128, show_default=True,
              help="Sequence length (tokens per sample).")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs before timing.")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True,
              help="Minimum timed runs.")
@click.option("--min-duration", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Minimum timed seconds; timing goes on until both minimums are met.")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Cap on timed seconds (the result then says rules not met).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads for every backend (default: the runtime's choice).")
@click.option("-o", "--option", "option_items", multiple=True, metavar="[BACKEND:]KEY=VALUE",
              help="Backend option, e.g. -o ort-cpu:graph_optimization_level=basic. Repeatable.")
@click.option("--strict", is_flag=True,
              help="Fail when any node runs on a device other than the one asked for.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated inputs.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=900.0,
              show_default=True, help="Seconds a backend may take before it is killed.")
@click.option("--isolate/--no-isolate", default=True, show_default=True,
              help="Run each backend in its own process (a crash or hang costs one row).")
@click.option("--json", "as_json", is_flag=True, help="Print the result document as JSON.")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Result file (.json) or folder. Default: results/.")
def command(backend_names: tuple[str, ...], model: str, overrides: tuple[str, ...],
          dispatch: str | None, batch: int, seq: int, warmup: int, iterations: int,
          min_duration: float, max_duration: float, threads: int | None,
          option_items: tuple[str, ...], strict: bool, seed: int, timeout: float,
          isolate: bool, as_json: bool, output: Path | None) -> None:
    """Benchmark a model on one or more backends: latency, throughput, parity, memory.

    Each backend runs the same inputs; latency is timed around run + synchronize
    after warm-up, until both --iterations and --min-duration are met. Parity is
    checked against golden outputs recorded from PyTorch when the model has them.
    The result is written as JSON (one file per run) under results/.

    \b
    Examples:
      portable bench --backend cpu
      portable bench -b cpu -b torch --batch 4 --seq 64 --threads 2
      portable bench -b cpu --model moe-small --set num_experts=64 --dispatch dense
      portable bench -b cpu --model my.onnx --json > result.json
    """
    from portable.harness import BenchSettings, Cell, run_cell
    from portable.isolation import run_isolated
    from portable.modelsource import resolve
    from portable.results import build_document, write_atomic

    names = list(dict.fromkeys(registry.canonical_name(b) for b in backend_names))
    per_backend = _split_options(option_items, names)
    for name in names:
        # Unknown names and bad options end the run now (exit 2); a backend that is
        # unavailable is recorded in its row and the others still run.
        with contextlib.suppress(errors.BackendUnavailable, errors.AdapterLoadError):
            registry.create(name, per_backend[name])
    _check_writable(output)
    settings = BenchSettings(batch=batch, seq=seq, warmup=warmup, iterations=iterations,
                             min_duration_s=min_duration, max_duration_s=max_duration,
                             threads=threads, strict=strict, seed=seed)
    source = resolve(model, overrides, dispatch)
    cells = []
    for name in names:
        stderr(f"bench {name} · {source.name} · batch {batch} × seq {seq} ...")
        cell = Cell(name, per_backend[name], source, settings)
        cells.append(run_isolated(cell, timeout) if isolate else run_cell(cell))
        if cells[-1]["status"] != "ok":
            stderr(f"  {name}: {cells[-1]['status']}: {cells[-1]['error']['message']}")
    document = build_document(source.to_dict(), settings.to_dict(), cells)
    path = write_atomic(_output_path(output, document), document)
    if as_json:
        click.echo(json.dumps(document, indent=1))
    else:
        from portable.tables import bench_table, print_table

        print_table(bench_table(document))
        if any(c["status"] == "ok" and not c["rules"]["met"] for c in cells):
            stderr("* stop rules not met (see rules.reason in the result file)")
    stderr(f"result: {path}")
    code = _exit_code(cells)
    if code:
        sys.exit(code)


