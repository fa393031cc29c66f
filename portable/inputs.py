"""Inputs generated from a model's signature, seeded, with every symbolic dim resolved.

What the user says about inputs (``--shape``, ``--dim``, ``--input``, ``--inputs``)
is an `InputSpec`: plain data that travels inside a cell to the child process,
where `make_feeds` builds the arrays. `plan_shapes` is the same resolution without
the arrays, so the parent can refuse a run (one line, exit 2) before any backend
starts. Input files load with ``allow_pickle=False``: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portable.adapter import Dim, TensorSpec
from portable.errors import InputError
from portable.signature import Signature, read_signature

_BATCH_WORDS = ("batch", "n", "b")
_SEQ_WORDS = ("seq", "sequence", "len", "length", "tokens", "time", "t", "s")
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


def _words(dim: str) -> list[str]:
    return dim.lower().replace("-", "_").split("_")


def _is_batch_name(dim: str) -> bool:
    return any(w in _BATCH_WORDS for w in _words(dim)) or dim.lower().startswith("batch")


def _is_seq_name(dim: str) -> bool:
    return any(w in _SEQ_WORDS for w in _words(dim)) or dim.lower().startswith("seq")


def _role(spec: TensorSpec, axis: int) -> str | None:
    """``batch``, ``seq`` or None for a symbolic dim: by its name, else by its place.

    By place, a leading dim is the batch, and the second dim of a rank-2 or rank-3
    input (``[batch, tokens]``, ``[batch, frames, features]``) the sequence; the
    second dim of an image (``[N, C, H, W]``) is not a sequence.
    """
    dim = spec.shape[axis]
    if not isinstance(dim, str):
        return None
    if _is_batch_name(dim):
        return "batch"
    if _is_seq_name(dim):
        return "seq"
    if axis == 0:
        return "batch"
    if axis == 1 and len(spec.shape) in (2, 3):
        return "seq"
    return None


def resolve_dims(
    specs: Sequence[TensorSpec], batch: int, seq: int, dims: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Sizes for every symbolic dim: explicit `dims`, then batch/seq by name, then by position.

    A dim named like a batch (``batch``, ``N``) takes `batch`; like a sequence
    (``seq``, ``sequence_length``) takes `seq`; otherwise a symbolic leading dim is
    the batch, and the second dim of a rank-2 or rank-3 input the sequence. Dims
    left over are simply absent.
    """
    sizes = dict(dims or {})
    for spec in specs:
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str) and dim not in sizes and (role := _role(spec, axis)):
                sizes[dim] = batch if role == "batch" else seq
    return sizes


def _first_dim(specs: Sequence[TensorSpec], role: str) -> tuple[str, int] | None:
    """The first (input, axis) named for `role`, else the first placed for it."""
    for by_name in (True, False):
        for spec in specs:
            for axis, dim in enumerate(spec.shape):
                named = isinstance(dim, str) and (
                    _is_batch_name(dim) if role == "batch" else _is_seq_name(dim))
                if (named if by_name else _role(spec, axis) == role):
                    return spec.name, axis
    return None


def sequence_dim(specs: Sequence[TensorSpec]) -> tuple[str, int] | None:
    """The (input name, axis) that `--seq` sizes, or None when the model has no sequence.

    A symbolic dim named like a sequence (``seq``, ``sequence_length``, ``time``),
    else the symbolic second dim of a rank-2 or rank-3 input. An image model
    (``[N, 3, H, W]``) has none: it reports no seq and no tokens/s.
    """
    return _first_dim(specs, "seq")


def _batch_dim(specs: Sequence[TensorSpec]) -> tuple[str, int] | None:
    """The dim named or placed like a batch, else the leading dim of the first input with
    one (an unnamed dynamic leading dim first, as in ``[-1, 3, ?, ?]``)."""
    ranked = [s for s in specs if s.shape]
    found = _first_dim(ranked, "batch")
    found = found or next(((s.name, 0) for s in ranked if s.shape[0] is None), None)
    return found or next(((s.name, 0) for s in ranked), None)


def run_shape(
    specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]
) -> tuple[int, int | None]:
    """(batch, seq or None) of the feeds actually run, read from the arrays, not the flags.

    `--shape images=4,3,224,224` runs batch 4 whatever `--batch` says, and `--inputs`
    holding ``(2, 64)`` token arrays runs batch 2 × seq 64. The seq is None when the
    model has no `sequence_dim`; the batch is 1 when no input has a leading dim.
    """
    def size(at: tuple[str, int] | None) -> int | None:
        if at is None or at[0] not in feeds or np.ndim(feeds[at[0]]) <= at[1]:
            return None
        return int(np.shape(feeds[at[0]])[at[1]])

    batch = size(_batch_dim(specs))
    return (1 if batch is None else batch), size(sequence_dim(specs))


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


def shape_text(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


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
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise InputError(f"--inputs {path}: no such file") from None
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


def _supplied(specs: Sequence[TensorSpec], given: InputSpec) -> dict[str, np.ndarray]:
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


_SPATIAL_WORDS = ("height", "width", "h", "w", "img", "image", "size")
_CHANNEL_WORDS = ("channel", "channels", "c")
_IMAGE_SIZE_KEYS = ("imgsz", "image_size", "img_size", "input_size")
_IMAGE_SIDE = 224
"""The usual side of an image classifier's input, when the model does not say."""
_CHANNELS = 3


def _image_side(metadata: Mapping[str, str], from_end: int) -> int:
    """An image side from metadata (``imgsz: [640, 480]`` is height, width; ``image_size:
    384`` both), else 224. `from_end` 1 is the width, 2 the height."""
    for key in _IMAGE_SIZE_KEYS:
        numbers = [int(n) for n in re.findall(r"\d+", metadata.get(key, "")) if int(n) > 0]
        if numbers:
            return numbers[-from_end] if 1 <= from_end <= len(numbers) else numbers[0]
    return _IMAGE_SIDE


def suggest_size(spec: TensorSpec, axis: int, batch: int, seq: int,
                 metadata: Mapping[str, str] | None = None) -> int:
    """A plausible size for a dim the user left open: never 1, which hides real cost.

    In order: an integer in the model's metadata under the dim's own name; the batch
    or seq for dims named or placed like them; 3 channels and 224 (or the metadata's
    image size) for the channel and spatial dims of an image input (rank 4, channels
    first unless a fixed 1 or 3 sits last); else the seq, a length of some kind.
    """
    metadata = {k.lower(): v for k, v in (metadata or {}).items()}
    dim = spec.shape[axis]
    if isinstance(dim, str) and metadata.get(dim.lower(), "").strip().isdigit():
        return int(metadata[dim.lower()])
    role = _role(spec, axis) if isinstance(dim, str) else ("batch" if axis == 0 else None)
    if role:
        return batch if role == "batch" else seq
    words = set(_words(dim)) if isinstance(dim, str) else set()
    rank = len(spec.shape)
    channels_last = rank == 4 and spec.shape[3] in (1, 3) and spec.shape[1] not in (1, 3)
    says_spatial = bool(words & set(_SPATIAL_WORDS))
    if words & set(_CHANNEL_WORDS) or (
            rank == 4 and axis == (3 if channels_last else 1) and not says_spatial):
        return _CHANNELS
    if says_spatial or rank == 4:
        return _image_side(metadata, (3 if channels_last else 4) - axis)
    return seq


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
    for name, shape in given.shapes.items():
        _bind(by_name[name], shape, sizes, "--shape")
    supplied = _supplied(specs, given)
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
        _fit(by_name[name], array, shapes[name], _source(name, given))
    return shapes


def _source(name: str, given: InputSpec) -> str:
    return "--input" if name in given.values else f"--inputs {given.npz}"


def random_array(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator,
                 high: int | None = None) -> np.ndarray:
    """Seeded values in a sensible range: normal floats, small non-negative integers, words."""
    dtype = numpy_dtype(spec.dtype)
    if dtype.kind in "fV" or spec.dtype == "bfloat16":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        top = min(high if high is not None else _DEFAULT_INT_HIGH, int(np.iinfo(dtype).max) + 1)
        return rng.integers(0, top, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind == "O":
        words = np.array(_WORDS, dtype=object)
        return words[rng.integers(0, len(words), size=shape)]
    raise InputError(f"input {spec.name!r}: cannot generate values of type {spec.dtype}")


def _fit(spec: TensorSpec, array: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
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


def _name_words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower()))


def conventional_values(spec: TensorSpec, generated: np.ndarray) -> np.ndarray:
    """What a tokenizer would feed to an input named by convention, else `generated`.

    An attention mask (``attention_mask``, ``input_mask``, ``mask``; not a padding or
    causal mask, whose ones would mean "ignore") is all ones, so no token is masked
    out: random 0/1s change the work a model does and its speed. Integer position
    ids (``position_ids``) count 0, 1, 2, ... along the last axis; token type ids
    (``token_type_ids``, ``segment_ids``) are zeros, one segment.
    """
    words = _name_words(spec.name)
    integer = generated.dtype.kind in "iu"
    if "mask" in words and not words & {"pad", "padding", "causal"} and generated.dtype.kind != "O":
        return np.ones_like(generated)
    if not integer or not words & {"ids", "id"} or generated.ndim == 0:
        return generated
    if words & {"position", "pos"}:
        positions = np.arange(generated.shape[-1], dtype=generated.dtype)
        return np.ascontiguousarray(np.broadcast_to(positions, generated.shape))
    if words & {"type", "segment"}:
        return np.zeros_like(generated)
    return generated


def make_feeds(
    specs: Sequence[TensorSpec],
    batch: int,
    seq: int,
    seed: int = 0,
    reference_config: Mapping[str, Any] | None = None,
    given: InputSpec | None = None,
    index_bounds: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded inputs for every model input, with the user's shapes, dims and data applied.

    Token ids of the reference model stay inside its vocabulary, integer inputs
    that index a tensor (`index_bounds`, from the signature) stay inside it, and
    masks, position ids and token type ids hold what a tokenizer would give
    (`conventional_values`). Every backend that gets the same specs, sizes, seed
    and `given` gets the same arrays.
    """
    given = given or InputSpec()
    shapes = plan_shapes(specs, batch, seq, given)
    supplied = _supplied(specs, given)
    rng = np.random.default_rng(seed)
    vocab = int(reference_config["vocab_size"]) if reference_config else None
    feeds = {}
    for spec in specs:
        high = (index_bounds or {}).get(spec.name, vocab)
        generated = random_array(spec, shapes[spec.name], rng, high=high)  # keeps rng in step
        generated = conventional_values(spec, generated)
        if spec.name in supplied:
            feeds[spec.name] = _fit(spec, supplied[spec.name], shapes[spec.name],
                                    _source(spec.name, given))
        else:
            feeds[spec.name] = generated
    return feeds


@dataclass(frozen=True)
class ResolvedInputs:
    """The inputs a cell runs: which model inputs are fed, and the arrays."""

    specs: tuple[TensorSpec, ...]
    feeds: dict[str, np.ndarray]

    def batch_seq(self) -> tuple[int, int | None]:
        """(batch, seq or None) actually run: see `run_shape`."""
        return run_shape(self.specs, self.feeds)


def resolve_inputs(model_path: Path, batch: int, seq: int, seed: int,
                   reference_config: Mapping[str, Any] | None,
                   given: InputSpec) -> ResolvedInputs:
    """The feeds for a model file, from its ONNX signature (not a session's: some runtimes
    drop symbolic dim names, and every backend must get the same arrays)."""
    signature = read_signature(model_path)
    specs = feed_specs(signature, given)
    feeds = make_feeds(specs, batch, seq, seed, reference_config, given, signature.index_bounds)
    return ResolvedInputs(specs, feeds)


def save_inputs(path: Path, feeds: Mapping[str, np.ndarray]) -> Path:
    """Write `feeds` as an .npz that ``--inputs`` reads back (atomically, umask mode).

    String inputs are stored as unicode arrays, so the file loads without pickle.
    """
    import zipfile

    from portable.atomicfile import atomic_write

    try:
        with atomic_write(path) as fh, zipfile.ZipFile(fh, "w") as archive:
            for name, array in feeds.items():  # not np.savez(**feeds): an input may be "file"
                data = array.astype(str) if array.dtype.kind == "O" else np.asanyarray(array)
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, data, allow_pickle=False)
    except OSError as exc:
        raise InputError(f"--save-inputs {path}: cannot write ({exc.strerror or exc})") from None
    return Path(path)


def describe_feeds(feeds: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Shape, dtype and a digest per input, so runs can prove they saw the same data."""
    described = {}
    for name, array in feeds.items():
        data = np.ascontiguousarray(array)
        raw = ("\x00".join(map(str, data.ravel())).encode() if data.dtype.kind == "O"
               else data.tobytes())
        described[name] = {
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "sha256": hashlib.sha256(raw).hexdigest()[:16],
        }
    return described
