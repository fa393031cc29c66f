"""Inputs generated from a model's signature, seeded, with every symbolic dim resolved.

What the user says about inputs (``--shape``, ``--dim``, ``--input``, ``--inputs``)
is an `InputSpec`: plain data that travels inside a cell to the child process,
where `make_feeds` builds the arrays. `plan_shapes` is the same resolution without
the arrays, so the parent can refuse a run (one line, exit 2) before any backend
starts. Input files load with ``allow_pickle=False``: nothing is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portable.adapter import Dim, TensorSpec
from portable.errors import InputError
from portable.shapes import resolve_dims, shape_text, suggest_size
from portable.signature import Signature

_DEFAULT_INT_HIGH = 100
_WORDS = ("alpha", "beta", "gamma", "delta", "portable", "onnx", "tensor", "string")


@dataclass(frozen=True)
class InputSpec:
    """The user's say over a model's inputs; whatever it leaves open is generated."""

    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Whole shapes per input name (``--shape name=1,3,640,640``)."""
    dims: Mapping[str, int] = field(default_factory=dict)
    """Sizes per symbolic dimension name, wherever it appears (``--dim name=4``)."""
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Literal values per input (``--input name=16000`` or ``name=1,2,3``), as typed."""
    npz: Path | None = None
    """Real data for some or all inputs, matched by array name (``--inputs file.npz``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "dims": dict(self.dims),
            "values": {k: list(v) for k, v in self.values.items()},
            "npz": str(self.npz) if self.npz else None,
        }


def feed_specs(signature: Signature, given: InputSpec) -> tuple[TensorSpec, ...]:
    """The inputs to feed: every required one, and the optional ones the user gives data for."""
    named = set(given.values) | set(given.shapes)
    if given.npz:
        try:
            with np.load(given.npz, allow_pickle=False) as data:
                named |= set(data.files)
        except Exception:  # load_npz reports an unreadable file, with its reason, right after
            pass
    return signature.inputs + tuple(s for s in signature.optional_inputs if s.name in named)


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a signature's dtype name (bfloat16 through ml_dtypes, str as object)."""
    if name == "bfloat16":
        import ml_dtypes  # shipped with onnx

        return np.dtype(ml_dtypes.bfloat16)
    if name in ("str", "string"):
        return np.dtype(object)
    try:
        return np.dtype(name)
    except TypeError:
        raise InputError(f"inputs of type {name} are not supported") from None


def _check_names(kind: str, given: Sequence[str], known: Sequence[str]) -> None:
    unknown = [name for name in given if name not in known]
    if unknown:
        raise InputError(
            f"{kind}: no input named {', '.join(map(repr, unknown))}; "
            f"the model's inputs are {', '.join(known) or '(none)'}"
        )


def load_npz(path: Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Arrays of an .npz file, every name matched to an input (unknown names are an error)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: _member(path, data, key) for key in data.files}
    except FileNotFoundError:
        raise InputError(f"--inputs {path}: no such file") from None
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"--inputs {path}: not a readable .npz file ({exc})") from None
    names = [s.name for s in specs]
    unknown = [key for key in arrays if key not in names]
    if unknown:
        raise InputError(
            f"--inputs {path}: arrays {', '.join(map(repr, unknown))} match no input; "
            f"the model's inputs are {', '.join(names)}"
        )
    return arrays


def _member(path: Path, data: Any, key: str) -> np.ndarray:
    """One array of an .npz; a member that is not a valid .npy is named in the error."""
    try:
        value = data[key]
    except Exception as exc:
        raise InputError(f"--inputs {path}: member {key!r} is not a valid .npy array "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(value, np.ndarray):
        raise InputError(f"--inputs {path}: member {key!r} is not a .npy array")
    return value


_NON_TENSORS = ("sequence", "optional", "map", "sparse_tensor", "opaque")


def check_feedable(spec: TensorSpec, supplied: bool) -> None:
    """InputError unless portable can feed `spec`: a tensor, of a type it can generate or
    that the user supplied data for."""
    if spec.dtype in _NON_TENSORS:
        raise InputError(f"input {spec.name!r} is not a tensor ({spec.dtype.replace('_', ' ')}); "
                         "portable feeds tensors only")
    if supplied:
        return
    try:
        kind = numpy_dtype(spec.dtype).kind
    except InputError:
        kind = ""
    if kind not in ("f", "i", "u", "b", "O") and spec.dtype != "bfloat16":
        raise InputError(f"input {spec.name!r} has type {spec.dtype}, which portable cannot "
                         "generate; give its data with --inputs FILE.npz")


def _literal(spec: TensorSpec, items: Sequence[str]) -> np.ndarray:
    dtype = numpy_dtype(spec.dtype)
    try:
        if dtype.kind == "b":
            values = [_parse_bool(item) for item in items]
        elif dtype.kind in "iu":
            values = [int(item) for item in items]
        elif dtype.kind == "O":
            values = list(items)
        else:
            values = [float(item) for item in items]
        array = np.array(values, dtype=dtype)
    except (ValueError, OverflowError) as exc:
        raise InputError(
            f"--input {spec.name}={','.join(items)}: not a valid {spec.dtype} value ({exc})"
        ) from None
    return array.reshape(()) if len(items) == 1 and len(spec.shape) == 0 else array


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise ValueError(f"expected true/false or 1/0, got {text!r}")


def supplied_arrays(specs: Sequence[TensorSpec], given: InputSpec) -> dict[str, np.ndarray]:
    """Arrays the user supplied (from --inputs, then --input literals), by input name."""
    names = [s.name for s in specs]
    _check_names("--input", list(given.values), names)
    supplied = load_npz(given.npz, specs) if given.npz else {}
    by_name = {s.name: s for s in specs}
    for name, items in given.values.items():
        supplied[name] = _literal(by_name[name], items)
    return supplied


def _bind(spec: TensorSpec, shape: Sequence[int], sizes: dict[str, int], source: str) -> None:
    """Take sizes of symbolic dims from a shape the user gave; refuse fixed dims that differ."""
    if len(shape) != len(spec.shape):
        raise InputError(
            f"input {spec.name!r}: expected rank {len(spec.shape)} {shape_text(spec.shape)}, "
            f"{source} has rank {len(shape)} {list(shape)}"
        )
    for dim, size in zip(spec.shape, shape, strict=True):
        if isinstance(dim, int) and dim != size:
            raise InputError(
                f"input {spec.name!r}: expected shape {shape_text(spec.shape)}, "
                f"{source} gives {list(shape)}"
            )
        if isinstance(dim, str):
            sizes.setdefault(dim, int(size))


def _unresolved_message(missing: list[tuple[TensorSpec, int, Dim]], command: str,
                        batch: int, seq: int, metadata: Mapping[str, str] | None) -> str:
    where = "; ".join(
        f"input {spec.name!r} {shape_text(spec.shape)} dimension {axis}"
        + (f" ({dim})" if dim else " (unnamed)")
        for spec, axis, dim in missing
    )
    flags: list[str] = []
    for spec, axis, dim in missing:
        if isinstance(dim, str):
            flag = f"--dim {dim}={suggest_size(spec, axis, batch, seq, metadata)}"
        else:
            flag = f"--shape {spec.name}=" + ",".join(
                str(d) if isinstance(d, int) else str(suggest_size(spec, i, batch, seq, metadata))
                for i, d in enumerate(spec.shape)
            )
        if flag not in flags:
            flags.append(flag)
    return (
        f"unresolved input dimensions: {where}. Set them (sizes suggested from the model's "
        f"metadata or common defaults), e.g.: {command} {' '.join(flags)}"
    )


def plan_shapes(
    specs: Sequence[TensorSpec],
    batch: int,
    seq: int,
    given: InputSpec | None = None,
    command: str = "portable bench --model MODEL",
    metadata: Mapping[str, str] | None = None,
) -> dict[str, tuple[int, ...]]:
    """The concrete shape of every input, or one InputError saying what to set and how.

    Sizes come from, in order: ``--dim``, ``--shape``, data the user supplied, then
    batch/seq by name or position. `command` starts the example in the error, whose
    suggested sizes use the model's `metadata` where it has them.
    """
    given = given or InputSpec()
    names = [s.name for s in specs]
    _check_names("--shape", list(given.shapes), names)
    symbolic = {d for s in specs for d in s.shape if isinstance(d, str)}
    unknown_dims = [d for d in given.dims if d not in symbolic]
    if unknown_dims:
        raise InputError(
            f"--dim: the model has no symbolic dimension {', '.join(map(repr, unknown_dims))}; "
            f"its symbolic dimensions are {', '.join(sorted(symbolic)) or '(none)'}"
        )
    sizes = dict(given.dims)
    by_name = {s.name: s for s in specs}
    supplied = supplied_arrays(specs, given)
    for spec in specs:
        check_feedable(spec, spec.name in supplied)
    for name, shape in given.shapes.items():
        _bind(by_name[name], shape, sizes, "--shape")
    for name, array in supplied.items():
        literal = name in given.values
        if literal and not (len(by_name[name].shape) == 1 and array.size > 1):
            continue  # a literal fills a shape set elsewhere, except a list for a 1-D input
        _bind(by_name[name], array.shape, sizes, "--input" if literal else "--inputs")
    sizes = resolve_dims(specs, batch, seq, sizes)
    shapes: dict[str, tuple[int, ...]] = {}
    missing: list[tuple[TensorSpec, int, Dim]] = []
    for spec in specs:
        if spec.name in given.shapes:
            shapes[spec.name] = tuple(given.shapes[spec.name])
            continue
        shape = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                shape.append(dim)
            elif isinstance(dim, str) and dim in sizes:
                shape.append(sizes[dim])
            elif spec.name in supplied and supplied[spec.name].ndim == len(spec.shape):
                shape.append(supplied[spec.name].shape[axis])
            else:
                missing.append((spec, axis, dim))
        shapes[spec.name] = tuple(shape)
    if missing:
        raise InputError(_unresolved_message(missing, command, batch, seq, metadata))
    for name, array in supplied.items():
        fit_array(by_name[name], array, shapes[name], source_label(name, given))
    return shapes


def source_label(name: str, given: InputSpec) -> str:
    return "--input" if name in given.values else f"--inputs {given.npz}"


def fit_array(spec: TensorSpec, array: np.ndarray, shape: tuple[int, ...],
              source: str) -> np.ndarray:
    """Check supplied data against the input: dtype exactly, shape after literal broadcasting."""
    expected = numpy_dtype(spec.dtype)
    matches = array.dtype == expected or (expected.kind == "O" and array.dtype.kind in "USO")
    if not matches:
        raise InputError(
            f"input {spec.name!r}: expected dtype {spec.dtype}, {source} gives {array.dtype}"
        )
    if array.shape == shape:
        return array
    if source == "--input" and array.size == 1:
        return np.full(shape, array.reshape(()), dtype=array.dtype)
    if source == "--input" and array.size == int(np.prod(shape)):
        return array.reshape(shape)
    raise InputError(
        f"input {spec.name!r}: expected shape {list(shape)} ({shape_text(spec.shape)}), "
        f"{source} gives {list(array.shape)}"
    )
