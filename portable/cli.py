"""The `portable` command line.

Exit codes: 0 ok · 1 a check failed (parity, regression, conformance) · 2 usage
error, unknown backend, bad model or inputs · 3 backend unavailable · 4 backend
crashed or timed out · 5 internal error in portable itself (a bug: please report).
Results go to stdout (pure JSON with --json); logs and progress go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

import portable
from portable import errors, registry

EXIT_INTERNAL = 5

log = logging.getLogger("portable")


class CliError(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class PortableGroup(click.Group):
    """Turns PortableError into one line on stderr and its exit code (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.PortableError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise CliError(str(exc), exc.exit_code) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise CliError(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                EXIT_INTERNAL,
            ) from None


def _stderr(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=PortableGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(portable.__version__, prog_name="portable")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Run one model on many accelerator stacks: does it run, does it agree, how fast.

    \b
    Examples:
      portable backends
      portable bench --backend cpu
      portable bench --backend cpu --backend torch --model moe-tiny --batch 2 --seq 64
      portable bench --backend cpu --model path/to/model.onnx --json
      portable export --preset moe-tiny --output moe-tiny.onnx

    Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 backend unavailable,
    4 backend crashed or timed out, 5 internal error.
    """
    level = logging.DEBUG if debug or verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = {"debug": debug}


# -- backends -----------------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include hidden test backends (null).")
def backends(as_json: bool, show_all: bool) -> None:
    """List every backend, whether it can run here, on what device, or why not.

    \b
    Examples:
      portable backends
      PORTABLE_BACKENDS=ort-cpu,torch portable backends --json
    """
    rows = registry.survey(include_hidden=show_all)
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=1))
        return
    from portable.tables import backends_table, print_table

    print_table(backends_table(rows))


# -- export -------------------------------------------------------------------------------------
@cli.command()
@click.option("--preset", default="moe-tiny", show_default=True,
              help="Reference model preset (moe-tiny, moe-small, moe-base).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set num_experts=64. Repeatable.")
@click.option("--dispatch", type=click.Choice(["sparse", "dense"]), default=None,
              help="MoE dispatch: sparse (only chosen experts run) or dense (all experts).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the model here (and NAME.golden.npz beside it). "
                   "Default: print the cached file's path.")
def export(preset: str, overrides: tuple[str, ...], dispatch: str | None,
           output: Path | None) -> None:
    """Export a reference MoE preset to ONNX, with golden outputs from PyTorch.

    Exports are cached (PORTABLE_CACHE, default ~/.cache/portable), keyed by the
    config and the versions of torch, onnx and onnxscript.

    \b
    Examples:
      portable export --preset moe-tiny
      portable export --preset moe-small --set num_experts=64 --dispatch dense -o small.onnx
    """
    from portable.modelsource import GOLDEN_SUFFIX, resolve

    _stderr(f"exporting {preset} (cached after the first time) ...")
    source = resolve(preset, overrides, dispatch)
    if output is None:
        click.echo(str(source.path))
        return
    if output.suffix != ".onnx":
        raise click.BadParameter("the output file must end in .onnx", param_hint="--output")
    golden_out = output.with_name(output.name.removesuffix(".onnx") + GOLDEN_SUFFIX)
    for src, dst in ((source.path, output), (source.golden_path, golden_out)):
        if src is not None:
            _copy_atomic(src, dst)
    click.echo(str(output))


def _copy_atomic(src: Path, dst: Path) -> None:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        raise CliError(f"cannot write {dst}: {exc.strerror or exc}", errors.EXIT_USAGE) from None


# -- bench --------------------------------------------------------------------------------------
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


@cli.command()
@click.option("-b", "--backend", "backend_names", multiple=True, default=("cpu",),
              show_default=True, help="Backend to run (repeatable): cpu, torch, openvino, cuda.")
@click.option("-m", "--model", default="moe-tiny", show_default=True,
              help="A reference preset (moe-tiny, moe-small, moe-base) or a path to an .onnx file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a preset's config field (repeatable).")
@click.option("--dispatch", type=click.Choice(["sparse", "dense"]), default=None,
              help="MoE dispatch for a preset.")
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
def bench(backend_names: tuple[str, ...], model: str, overrides: tuple[str, ...],
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
        _stderr(f"bench {name} · {source.name} · batch {batch} × seq {seq} ...")
        cell = Cell(name, per_backend[name], source, settings)
        cells.append(run_isolated(cell, timeout) if isolate else run_cell(cell))
        if cells[-1]["status"] != "ok":
            _stderr(f"  {name}: {cells[-1]['status']}: {cells[-1]['error']['message']}")
    document = build_document(source.to_dict(), settings.to_dict(), cells)
    path = write_atomic(_output_path(output, document), document)
    if as_json:
        click.echo(json.dumps(document, indent=1))
    else:
        from portable.tables import bench_table, print_table

        print_table(bench_table(document))
        if any(c["status"] == "ok" and not c["rules"]["met"] for c in cells):
            _stderr("* stop rules not met (see rules.reason in the result file)")
    _stderr(f"result: {path}")
    code = _exit_code(cells)
    if code:
        sys.exit(code)


def main() -> None:
    cli(prog_name="portable")
