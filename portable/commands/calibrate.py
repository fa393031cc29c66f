"""`portable calibrate`: this machine's memory bandwidth and matmul peak, for rooflines."""

from __future__ import annotations

import json

import click

from portable.commands import stderr


@click.command("calibrate")
@click.option("--force", is_flag=True, help="Measure again even when a calibration is cached.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def command(force: bool, as_json: bool) -> None:
    """Measure memory bandwidth (large array copy) and float32 matmul FLOP/s, once.

    The figures are cached per machine (CPU, cores, numpy version) beside the model
    cache; `portable bench` then reports each reference-model result's fraction of
    the roofline, max(FLOPs / peak, bytes / bandwidth) over its p50.

    \b
    Examples:
      portable calibrate
      portable calibrate --force --json
    """
    from portable.roofline import cache_path, calibrate, load_calibration, save_calibration

    figures = None if force else load_calibration()
    if figures is None:
        stderr("measuring memory bandwidth and matmul throughput (about 10 s) ...")
        figures = calibrate()
        stderr(f"cached: {save_calibration(figures)}")
    else:
        stderr(f"cached calibration: {cache_path()} (--force to measure again)")
    if as_json:
        click.echo(json.dumps(figures, indent=1))
    else:
        click.echo(f"memory bandwidth: {figures['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s")
        click.echo(f"matmul (float32): {figures['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s")
