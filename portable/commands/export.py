"""`portable export`: the reference MoE to ONNX, with golden outputs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click

from portable import errors
from portable.commands import CliError, preset_options, stderr
from portable.precision import PRECISIONS


@click.command("export")
@click.option("--preset", default="moe-tiny", show_default=True,
              help="Reference model preset (moe-tiny, moe-small, moe-base).")
@preset_options
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Storage precision: fp16/bf16 weights and activations, or int8/int4 "
                   "weight-only quantization (routed experts included), made from the fp32 "
                   "export; the golden outputs stay fp32 PyTorch's.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the model here (and NAME.golden.npz beside it). "
                   "Default: print the cached file's path.")
def command(preset: str, overrides: tuple[str, ...], dispatch: str | None, precision: str,
           output: Path | None) -> None:
    """Export a reference MoE preset to ONNX, with golden outputs from PyTorch.

    Exports are cached (PORTABLE_CACHE, default ~/.cache/portable), keyed by the
    config and the versions of torch, onnx and onnxscript.

    \b
    Examples:
      portable export --preset moe-tiny
      portable export --preset moe-small --set num_experts=64 --dispatch dense -o small.onnx
      portable export --preset moe-small --precision int8 -o moe-small-int8.onnx
    """
    from portable.modelsource import GOLDEN_SUFFIX, resolve

    stderr(f"exporting {preset} at {precision} (cached after the first time) ...")
    source = resolve(preset, overrides, dispatch, precision)
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


