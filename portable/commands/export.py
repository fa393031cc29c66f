"""`portable export`: the reference MoE to ONNX, with golden outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from portable import errors
from portable.commands import CliError, preset_options, stderr
from portable.commands.params import SafePath
from portable.precision import PRECISIONS


@click.command("export")
@click.option("-m", "--model", "--preset", "preset", default="moe-tiny", show_default=True,
              help="Reference model preset (moe-tiny, moe-small, moe-base); --model and "
                   "--preset are the same option, as in bench.")
@preset_options
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Storage precision: fp16/bf16 weights and activations, or int8/int4 "
                   "weight-only quantization (routed experts included), made from the fp32 "
                   "export; the golden outputs stay fp32 PyTorch's.")
@click.option("--output", type=SafePath(dir_okay=False), default=None,
              help="Write the model here (and NAME.golden.npz beside it). Default: print the "
                   "cached file's path. No short form: -o means --option in every command.")
def command(preset: str, overrides: tuple[str, ...], dispatch: str | None, precision: str,
           output: Path | None) -> None:
    """Export a reference MoE preset to ONNX, with golden outputs from PyTorch.

    Exports are cached (PORTABLE_CACHE, default ~/.cache/portable), keyed by the
    config and the versions of torch, onnx and onnxscript. Written files get the
    permissions your umask gives, like any file you create.

    \b
    Examples:
      portable export --model moe-tiny
      portable export --model moe-small --set num_experts=64 --dispatch dense --output small.onnx
      portable export --model moe-small --precision int8 --output moe-small-int8.onnx
    """
    from portable.modelsource import GOLDEN_SUFFIX, resolve

    source = resolve(preset, overrides, dispatch, progress=stderr, precision=precision)
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
    from portable.atomicfile import atomic_write

    try:
        with open(src, "rb") as fh, atomic_write(dst) as out:
            shutil.copyfileobj(fh, out, 1 << 20)
    except OSError as exc:
        raise CliError(f"cannot write {dst}: {exc.strerror or exc}", errors.EXIT_USAGE) from None
