"""The arrays a work item runs: generated from the signature (seeded) or taken from the user.

`portable.inputs` says what the inputs are and resolves every shape; this module makes
the arrays (`make_feeds`, `resolve_inputs`), describes them for results
(`describe_feeds`) and saves them for reuse (`save_inputs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portable import reference
from portable.adapter import TensorSpec
from portable.errors import InputError
from portable.inputs import (
    InputSpec,
    feed_specs,
    fit_array,
    numpy_dtype,
    plan_shapes,
    source_label,
    supplied_arrays,
)
from portable.shapes import run_shape
from portable.signature import read_signature

_DEFAULT_INT_HIGH = 100
_WORDS = ("alpha", "beta", "gamma", "delta", "portable", "onnx", "tensor", "string")



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

    Token ids of a reference model stay inside its vocabulary (`portable.reference`),
    integer inputs that index a tensor (`index_bounds`, from the signature) stay inside
    it, and masks, position ids and token type ids hold what a tokenizer would give
    (`conventional_values`). Every backend that gets the same specs, sizes, seed and
    `given` gets the same arrays.
    """
    given = given or InputSpec()
    shapes = plan_shapes(specs, batch, seq, given)
    supplied = supplied_arrays(specs, given)
    rng = np.random.default_rng(seed)
    bounds = {**reference.index_bounds(reference_config), **(index_bounds or {})}
    feeds = {}
    for spec in specs:
        if spec.name in supplied:
            feeds[spec.name] = fit_array(spec, supplied[spec.name], shapes[spec.name],
                                         source_label(spec.name, given))
            # Draw what would have been generated, so the other inputs' values do not
            # depend on which inputs the user supplied (a type portable cannot
            # generate draws nothing: only supplied data can feed it).
            with contextlib.suppress(InputError):
                random_array(spec, shapes[spec.name], rng, high=bounds.get(spec.name))
        else:
            generated = random_array(spec, shapes[spec.name], rng, high=bounds.get(spec.name))
            feeds[spec.name] = conventional_values(spec, generated)
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
