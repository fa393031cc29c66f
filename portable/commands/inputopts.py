"""Options that say what a model's inputs are, shared by `bench` and `check`.

``--shape``, ``--dim``, ``--input`` and ``--inputs`` become an `InputSpec`, and
`preflight` resolves every input's shape from the ONNX signature in the parent,
so a missing dimension or bad data ends the run with one line before any
backend starts.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from portable.commands import stderr
from portable.commands.params import SafePath
from portable.errors import InputError
from portable.inputs import InputSpec

if TYPE_CHECKING:
    from portable.modelsource import ModelSource


def _pairs(items: Sequence[str], flag: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"{item!r}: expected {example}", param_hint=flag)
        pairs.append((name.strip(), value.strip()))
    return pairs


def _sizes(text: str, item: str, flag: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(size < 0 for size in sizes):
        raise click.BadParameter(f"{item!r}: sizes must be integers >= 0", param_hint=flag)
    return sizes


def input_spec(shapes: Sequence[str], dims: Sequence[str], values: Sequence[str],
               npz: Path | None) -> InputSpec:
    """The parsed input options (syntax errors are usage errors naming the flag)."""
    dim_sizes = {}
    for name, text in _pairs(dims, "--dim", "NAME=SIZE"):
        sizes = _sizes(text, f"{name}={text}", "--dim")
        if len(sizes) != 1:
            raise click.BadParameter(f"{name}={text!r}: one integer >= 0", param_hint="--dim")
        dim_sizes[name] = sizes[0]
    return InputSpec(
        shapes={n: _sizes(t, f"{n}={t}", "--shape")
                for n, t in _pairs(shapes, "--shape", "NAME=D0,D1,...")},
        dims=dim_sizes,
        values={n: tuple(t.split(",")) for n, t in _pairs(values, "--input", "NAME=VALUE[,...]")},
        npz=npz,
    )


def input_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --shape, --dim, --input, --inputs and --save-inputs to a command."""
    decorators = [
        click.option("--shape", "shapes", multiple=True, metavar="NAME=D0,D1,...",
                     help="Whole shape of one input, e.g. --shape images=1,3,640,640."),
        click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE",
                     help="Size of a symbolic dimension wherever it appears, e.g. --dim height=4."),
        click.option("--input", "values", multiple=True, metavar="NAME=VALUE[,...]",
                     help="Values of a scalar or small input (or of an input that has an "
                          "initializer), e.g. --input sample_rate=16000."),
        click.option("--inputs", "npz", type=SafePath(), default=None,
                     help="An .npz file with real data; arrays are matched to inputs by name."),
        click.option("--save-inputs", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, metavar="FILE.npz",
                     help="Write the inputs that run (generated or given) to FILE.npz, for "
                          "--inputs to read back. A batch sweep writes FILE.batchN.npz each."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _typed(param: str) -> bool:
    """Whether the user typed `param` on the command line (not its default)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(param) in (
        click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def preflight(command: str, model: str, backends: Sequence[str], model_path: Path,
              batch: int, seq: int, spec: InputSpec) -> None:
    """Resolve every input's shape from the signature, or raise InputError (exit 2).

    The error's ready-to-run example repeats the user's `command`, `model`,
    `backends` and input options, and adds the flags still needed. A ``--seq``
    typed on the command line for a model without a sequence dimension is refused.
    """
    from portable.inputs import feed_specs, load_npz, plan_shapes
    from portable.shapes import sequence_dim, shape_text
    from portable.signature import read_signature

    signature = read_signature(model_path)
    specs = feed_specs(signature, spec)
    has_seq = sequence_dim(specs) is not None
    if _typed("seq") and not has_seq:
        inputs = ", ".join(f"{s.name} {shape_text(s.shape)}" for s in specs)
        raise InputError(f"--seq: {model} has no sequence dimension (its inputs: {inputs}); "
                         "size its inputs with --shape or --dim instead")
    words = ["portable", command, "--model", model]
    for name in backends:
        words += ["-b", name]
    words += [f"--batch={batch}"] + ([f"--seq={seq}"] if has_seq else [])
    for name, shape in spec.shapes.items():
        words += ["--shape", f"{name}={','.join(map(str, shape))}"]
    for name, size in spec.dims.items():
        words += ["--dim", f"{name}={size}"]
    for name, items in spec.values.items():
        words += ["--input", f"{name}={','.join(items)}"]
    if spec.npz:
        words += ["--inputs", str(spec.npz)]
    plan_shapes(specs, batch, seq, spec, shlex.join(words), signature.metadata)
    if spec.npz:
        in_file = set(load_npz(spec.npz, specs))
        missing = [s.name for s in specs if s.name not in in_file and s.name not in spec.values]
        if missing:
            stderr(f"--inputs {spec.npz}: no arrays for {', '.join(missing)}; "
                   "generating them (seeded)")


def save_run_inputs(path: Path | None, source: ModelSource, batches: Sequence[int], seq: int,
                    seed: int, spec: InputSpec) -> None:
    """``--save-inputs``: write the feeds each batch size runs, as the cells will make them."""
    if path is None:
        return
    if path.suffix != ".npz":
        raise click.BadParameter(f"{path}: the file must end in .npz", param_hint="--save-inputs")
    from portable.feeds import resolve_inputs, save_inputs

    for size in batches:
        target = path if len(batches) == 1 else path.with_suffix(f".batch{size}.npz")
        resolved = resolve_inputs(source.path, size, seq, seed, source.reference_config, spec)
        stderr(f"inputs: {save_inputs(target, resolved.feeds)}")
