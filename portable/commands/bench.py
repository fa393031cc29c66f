"""`portable bench`: one model, one or more backends, one result file."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from portable import errors, registry
from portable.commands import (
    CliError,
    exit_code_for,
    preset_options,
    progress_bar,
    split_backend_options,
    stderr,
)
from portable.commands.inputopts import input_options, input_spec, preflight
from portable.commands.params import FiniteFloat, ResultPath, Seed, Threads

SCENARIOS = ("latency", "throughput", "server")
DEFAULT_BATCHES = {"latency": (1,), "throughput": (1, 4, 16, 64), "server": (1,)}


class BatchList(click.ParamType):
    """`--batch 1,4,16,64`: one or more positive batch sizes."""

    name = "N[,N...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            sizes = tuple(int(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r}: expected positive integers separated by commas", param, ctx)
        for size in sizes:
            if size < 1:
                self.fail(f"{size} is not in the range x>=1", param, ctx)
        return tuple(dict.fromkeys(sizes))


def _report_cell(name: str, cell: dict[str, Any]) -> None:
    from portable.escape import terminal

    if cell["status"] != "ok":
        stderr(terminal(f"  {name}: {cell['status']}: {cell['error']['message']}"))
    for warning in cell.get("warnings", ()):
        stderr(terminal(f"  {name} batch {cell['batch']}: {warning}"))


def add_cost(cells: list[dict[str, Any]], price_per_hour: float) -> None:
    """Cost per million tokens at the cell's measured tokens/s, for every ok cell."""
    for cell in cells:
        tokens_per_s = (cell.get("throughput") or {}).get("tokens_per_s")
        if cell["status"] == "ok" and tokens_per_s:
            cell["cost"] = {"price_per_hour": price_per_hour,
                            "per_million_tokens": price_per_hour / 3600 / tokens_per_s * 1e6}


def _server_line(cell: dict[str, Any]) -> str:
    server = cell["server"]
    achieved = server["achieved_rate"] or 0.0
    line = (f"server {cell['backend']} batch {cell['batch']}: {server['verdict']} at "
            f"{server['rate']:.3g} req/s (achieved {achieved:.3g}), "
            f"p99 {cell['latency']['p99']:.3f} ms vs bound {server['p99_bound_ms']:g} ms")
    if "peak_rate" in server:
        peak = server["peak_rate"]
        line += (f"; peak {peak:.3g} req/s" if peak is not None
                 else "; no trial rate kept p99 under the bound")
    return line


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
@preset_options
@click.option("--scenario", type=click.Choice(SCENARIOS), default="latency", show_default=True,
              help="latency: one request at a time; throughput: a sweep over --batch sizes; "
                   "server: Poisson arrivals at --rate, driven by MLPerf LoadGen.")
@click.option("--batch", "batches", type=BatchList(), default=None,
              help="Batch size, or a comma list for a sweep (default: 1 for latency, "
                   "1,4,16,64 for throughput). Each size is a cell of the matrix.")
@click.option("--rate", type=FiniteFloat(min=0, min_open=True), default=10.0,
              show_default=True, help="server: target arrival rate, requests/s.")
@click.option("--p99-bound-ms", type=FiniteFloat(min=0, min_open=True), default=100.0,
              show_default=True, help="server: latency bound at p99, queueing included.")
@click.option("--find-peak", is_flag=True,
              help="server: bisect for the highest rate that keeps p99 under the bound.")
@click.option("--price-per-hour", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Price of the machine per hour (any currency): adds cost per million tokens.")
@click.option("--seq", type=click.IntRange(min=1), default=128, show_default=True,
              help="Sequence length (tokens per sample).")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs before timing.")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True,
              help="Minimum timed runs.")
@click.option("--min-duration", type=FiniteFloat(min=0), default=2.0, show_default=True,
              help="Minimum timed seconds; timing goes on until both minimums are met.")
@click.option("--max-duration", type=FiniteFloat(min=0, min_open=True), default=60.0,
              show_default=True, help="Cap on timed seconds (the result then says rules not met).")
@click.option("--threads", type=Threads(), default=None,
              help="Intra-op threads for every backend (default: the runtime's choice).")
@click.option("-o", "--option", "option_items", multiple=True, metavar="[BACKEND:]KEY=VALUE",
              help="Backend option, e.g. -o ort-cpu:graph_optimization_level=basic. Repeatable.")
@click.option("--strict", is_flag=True,
              help="Fail when any node runs on a device other than the one asked for.")
@click.option("--seed", type=Seed(), default=0, show_default=True,
              help="Seed for generated inputs.")
@click.option("--timeout", type=FiniteFloat(min=0, min_open=True), default=900.0,
              show_default=True, help="Seconds a backend may take before it is killed.")
@click.option("--isolate/--no-isolate", default=True, show_default=True,
              help="Run each backend in its own process (a crash or hang costs one row).")
@click.option("--json", "as_json", is_flag=True, help="Print the result document as JSON.")
@click.option("--output", type=ResultPath(), default=None,
              help="Result file (.json) or folder. Default: results/.")
@input_options
def command(backend_names: tuple[str, ...], model: str, overrides: tuple[str, ...],
          dispatch: str | None, scenario: str, batches: tuple[int, ...] | None, rate: float,
          p99_bound_ms: float, find_peak: bool, price_per_hour: float | None, seq: int,
          warmup: int, iterations: int,
          min_duration: float, max_duration: float, threads: int | None,
          option_items: tuple[str, ...], strict: bool, seed: int, timeout: float,
          isolate: bool, as_json: bool, output: Path | None, shapes: tuple[str, ...],
          dims: tuple[str, ...], values: tuple[str, ...], npz: Path | None) -> None:
    """Benchmark a model on one or more backends: latency, throughput, parity, memory.

    Each backend runs the same inputs; latency is timed around run + synchronize
    after warm-up, until both --iterations and --min-duration are met. Parity is
    checked against golden outputs recorded from PyTorch when the model has them,
    and, with several backends, against the first backend's outputs at each batch.
    The result is written as JSON (one file per run) under results/. Each cell
    (backend × batch) runs in its own process; Ctrl-C stops the run, keeps the
    completed cells in the result file and exits 130.

    \b
    Examples:
      portable bench --backend cpu
      portable bench -b cpu --scenario throughput --batch 1,4,16,64
      portable bench -b cpu --scenario server --rate 50 --p99-bound-ms 20 --find-peak
      portable bench -b cpu -b torch --batch 4 --seq 64 --threads 2
      portable bench -b cpu --model moe-small --set num_experts=64 --dispatch dense
      portable bench -b cpu --model my.onnx --json > result.json
      portable bench -b cpu -b openvino --model yolo.onnx --shape images=1,3,640,640
      portable bench -b cpu --model asr.onnx --dim frames=300 --input sample_rate=16000
    """
    from portable.crosscheck import cross_check
    from portable.harness import BenchSettings, Cell, run_cell
    from portable.isolation import run_isolated
    from portable.modelsource import resolve
    from portable.results import best_throughput, build_document, write_atomic

    names = list(dict.fromkeys(registry.canonical_name(b) for b in backend_names))
    per_backend = split_backend_options(option_items, names)
    for name in names:
        # Unknown names and bad options end the run now (exit 2); a backend that is
        # unavailable is recorded in its row and the others still run.
        with contextlib.suppress(errors.BackendUnavailable, errors.AdapterLoadError):
            registry.create(name, per_backend[name])
    _check_writable(output)
    if scenario == "server" and importlib.util.find_spec("mlperf_loadgen") is None:
        raise CliError("the server scenario needs MLPerf LoadGen: "
                       "pip install 'portable[loadgen]'", errors.EXIT_UNAVAILABLE)
    if scenario == "server" and min_duration <= 0:
        raise click.UsageError("--scenario server needs --min-duration > 0: LoadGen measures "
                               "the achieved rate and p99 over a timed window")
    batches = batches or DEFAULT_BATCHES[scenario]
    settings = BenchSettings(batch=batches[0], seq=seq, warmup=warmup, iterations=iterations,
                             min_duration_s=min_duration, max_duration_s=max_duration,
                             threads=threads, strict=strict, seed=seed, rate=rate,
                             p99_bound_ms=p99_bound_ms, find_peak=find_peak)
    source = resolve(model, overrides, dispatch)
    given = input_spec(shapes, dims, values, npz)
    for size in batches:
        preflight("bench", model, backend_names, source.path, size, seq, given)
    plan = [Cell(name, per_backend[name], source, dataclasses.replace(settings, batch=size),
                 scenario, inputs=given, keep_outputs=len(names) > 1)
            for name in names for size in batches]
    cells: list[dict[str, Any]] = []
    interrupted = False
    with progress_bar(len(plan), quiet=as_json) as advance:
        try:
            for cell in plan:
                label = f"{cell.backend} · {source.name} · batch {cell.settings.batch} × seq {seq}"
                advance(label)
                cells.append(run_isolated(cell, timeout) if isolate else run_cell(cell))
                _report_cell(cell.backend, cells[-1])
        except KeyboardInterrupt:
            interrupted = True
            stderr(f"interrupted: keeping {len(cells)} of {len(plan)} completed cells")
    for size in batches:  # backends agree on the same inputs, so compare within a batch size
        cross_check([c for c in cells if c["batch"] == size])
    from portable.roofline import annotate

    if hint := annotate(cells, source.reference_config):
        stderr(hint)
    if price_per_hour is not None:
        add_cost(cells, price_per_hour)
    run_settings = {**settings.to_dict(), "scenario": scenario, "batches": list(batches)}
    document = build_document(source.to_dict(), run_settings, cells)
    if interrupted:
        document["interrupted"] = True
    path = write_atomic(_output_path(output, document), document)
    if as_json:
        click.echo(json.dumps(document, indent=1))
    else:
        from portable.tables import bench_table, print_table

        print_table(bench_table(document))
        if any(c["status"] == "ok" and not c["rules"]["met"] for c in cells):
            stderr("* stop rules not met (see rules.reason in the result file)")
        for cell in cells:
            if "server" in cell:
                stderr(_server_line(cell))
        if scenario == "throughput":
            for best in best_throughput(cells):
                stderr(f"best throughput {best['backend']}: batch {best['batch']}, "
                       f"{best['samples_per_s']:.1f} samples/s, "
                       f"{best['tokens_per_s']:.0f} tokens/s")
    stderr(f"result: {path}")
    if interrupted:
        sys.exit(errors.EXIT_INTERRUPTED)
    code = exit_code_for(cells)
    if code:
        sys.exit(code)


