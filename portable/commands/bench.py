"""`portable bench`: one model, one or more backends, one result file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from portable import errors
from portable.commands import preset_options, progress_bar, stderr
from portable.commands.params import FiniteFloat, SafePath
from portable.commands.runopts import (
    build_request,
    launcher_for,
    report_result,
    run_options,
    settings_from,
)
from portable.precision import PRECISIONS
from portable.records import CellResult
from portable.run import RunOutcome
from portable.scenarios import SCENARIOS


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


def _server_line(result: CellResult) -> str:
    from portable.escape import terminal

    server = result.extras["server"]
    achieved = server["achieved_rate"] or 0.0
    p99 = "-" if server["p99_ms"] is None else f"{server['p99_ms']:.3f}"
    line = (f"server {result.backend} batch {result.batch}: {server['verdict']} at "
            f"{server['rate']:.3g} req/s (achieved {achieved:.3g}), "
            f"p99 {p99} ms (LoadGen, queueing included) vs bound {server['p99_bound_ms']:g} ms")
    if "peak_rate" in server:
        peak = server["peak_rate"]
        line += (f"; peak {peak:.3g} req/s" if peak is not None
                 else "; no trial rate was VALID")
    if server["invalid_reasons"]:
        line += "; INVALID: " + "; ".join(server["invalid_reasons"])
    return terminal(line)


def _generate_line(result: CellResult) -> str:
    from portable.escape import terminal

    figures = result.extras["generate"]
    line = (f"generate {result.backend} batch {result.batch} · prompt {figures['prompt_len']} "
            f"+ {figures['gen_len']} tokens: TTFT p50 {figures['ttft_ms']['p50']:.2f} ms, "
            f"TPOT p50 {figures['tpot_ms']['p50']:.3f} ms, "
            f"{figures['output_tokens_per_s']:.0f} output tokens/s")
    parity = figures.get("token_parity")
    if parity:
        line += f"; token_match {parity['token_match']:.3f} vs {parity['reference']}"
        if parity["first_divergence"] is not None:
            kind = "FAIL: a real disagreement" if parity["real_disagreement"] else "a near-tie"
            line += (f" (first divergence at step {parity['first_divergence']}, reference "
                     f"margin {parity['reference_margin']:.2e}: {kind})")
    return terminal(line)


def _print_outcome(outcome: RunOutcome, as_json: bool) -> None:
    """The document as JSON on stdout, or the table there and the notes on stderr."""
    if as_json:
        click.echo(json.dumps(outcome.document, indent=1))
        return
    from portable.results import best_throughput
    from portable.tables import bench_table, print_table

    print_table(bench_table(outcome.document))
    if any(r.ok and not r.rules.met for r in outcome.results):
        stderr("* stop rules not met (see rules.reason in the result file)")
    for result in outcome.results:
        if "server" in result.extras:
            stderr(_server_line(result))
        if "generate" in result.extras:
            stderr(_generate_line(result))
    if len(outcome.document["settings"]["batches"]) > 1:
        for best in best_throughput(outcome.document["results"]):
            stderr(f"best throughput {best['backend']}: batch {best['batch']}, "
                   f"{best['samples_per_s']:.1f} samples/s"
                   + (f", {best['tokens_per_s']:.0f} tokens/s" if best["tokens_per_s"] else ""))
    for note in outcome.notes:
        stderr(note)


@click.command("bench")
@click.option("-m", "--model", default="moe-tiny", show_default=True,
              help="A reference preset (moe-tiny, moe-small, moe-base) or a path to an .onnx file.")
@preset_options
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="A reduced-precision variant of a preset (fp16, bf16, int8, int4; the "
                   "same as --model moe-small-int8), judged by routing-aware parity.")
@click.option("--scenario", type=click.Choice(tuple(SCENARIOS)), default="latency",
              show_default=True,
              help="; ".join(f"{name}: {cls.description}" for name, cls in SCENARIOS.items()))
@click.option("--batch", "batches", type=BatchList(), default=None,
              help="Batch size, or a comma list for a sweep (default: 1 for latency, "
                   "1,4,16,64 for throughput). Each size is a cell of the matrix.")
@click.option("--rate", type=FiniteFloat(min=0, min_open=True), default=None,
              help="server: target arrival rate, requests/s (default: half the rate one "
                   "worker serves back to back, measured first).")
@click.option("--p99-bound-ms", type=FiniteFloat(min=0, min_open=True), default=100.0,
              show_default=True, help="server: latency bound at p99, queueing included.")
@click.option("--find-peak", is_flag=True,
              help="server: bisect for the highest rate that keeps p99 under the bound.")
@click.option("--price-per-hour", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Price of the machine per hour (any currency): adds cost per million tokens.")
@click.option("--seq", type=click.IntRange(min=1), default=128, show_default=True,
              help="Sequence length (tokens per sample).")
@click.option("--prompt-len", type=click.IntRange(min=1), default=64, show_default=True,
              help="generate: prompt tokens per sequence (prefill).")
@click.option("--gen-len", type=click.IntRange(min=1), default=32, show_default=True,
              help="generate: tokens generated per sequence, the first (from the prefill) "
                   "included.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs before timing.")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True,
              help="Minimum timed runs.")
@click.option("--min-duration", type=FiniteFloat(min=0), default=2.0, show_default=True,
              help="Minimum timed seconds; timing goes on until both minimums are met.")
@click.option("--max-duration", type=FiniteFloat(min=0, min_open=True), default=60.0,
              show_default=True, help="Cap on timed seconds (the result then says rules not met).")
@click.option("--json", "as_json", is_flag=True, help="Print the result document as JSON.")
@click.option("--output", type=SafePath(), default=None,
              help="Result file (.json) or folder. Default: results/.")
@run_options(default_backends=("cpu",))
def command(model: str, overrides: tuple[str, ...], dispatch: str | None,
            precision: str | None, scenario: str,
            batches: tuple[int, ...] | None, rate: float | None, p99_bound_ms: float,
            find_peak: bool,
            price_per_hour: float | None, seq: int, prompt_len: int, gen_len: int,
            warmup: int, iterations: int,
            min_duration: float, max_duration: float, as_json: bool, output: Path | None,
            **params: Any) -> None:
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
      portable bench -b cpu -b openvino --scenario generate --prompt-len 64 --gen-len 32
      portable bench -b cpu -b torch --batch 4 --seq 64 --threads 2
      portable bench -b cpu --model moe-small --set num_experts=64 --dispatch dense
      portable bench -b cpu --model my.onnx --json > result.json
      portable bench -b cpu -b openvino --model yolo.onnx --shape images=1,3,640,640
      portable bench -b cpu --model asr.onnx --dim frames=300 --input sample_rate=16000
    """
    from portable.modelsource import resolve
    from portable.results import check_output, save
    from portable.run import execute, finalize, plan

    check_output(output)
    generating = SCENARIOS[scenario].with_past
    settings = settings_from(params, batch=1, seq=prompt_len if generating else seq,
                             prompt_len=prompt_len, gen_len=gen_len, warmup=warmup,
                             iterations=iterations,
                             min_duration_s=min_duration, max_duration_s=max_duration,
                             rate=rate, p99_bound_ms=p99_bound_ms, find_peak=find_peak)
    chosen = launcher_for(params, on_progress=None if as_json else stderr)
    request = build_request("bench", model, params,
                            lambda: resolve(model, overrides, dispatch, progress=stderr,
                                            with_past=generating, precision=precision),
                            settings,
                            scenario=scenario, batches=batches or (), price_per_hour=price_per_hour)
    items = plan(request)
    with progress_bar(len(items), quiet=as_json or params["cluster"] is not None) as advance:
        execution = execute(items, chosen,
                            on_start=lambda item: advance(item.label()), on_result=report_result)
    if execution.interrupted:
        stderr(f"interrupted: keeping {len(execution.results)} of {len(items)} completed cells")
    outcome = finalize(request, execution)
    path, problem = save(output, outcome.document)
    _print_outcome(outcome, as_json)
    stderr(f"result: {path}")
    if problem:
        stderr(f"{problem}; the result was written to {path} instead")
        sys.exit(errors.EXIT_USAGE)
    sys.exit(outcome.exit_code)
