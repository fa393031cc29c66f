"""Inputs generated from a model's signature, seeded, with every symbolic dim resolved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from portable.adapter import TensorSpec
from portable.errors import InputError

_BATCH_WORDS = ("batch", "n", "b")
_SEQ_WORDS = ("seq", "sequence", "len", "length", "tokens", "time", "t", "s")


def resolve_dims(
    specs: Sequence[TensorSpec], batch: int, seq: int, dims: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Sizes for every symbolic dim: explicit `dims`, then batch/seq by name, then by position.

    A dim named like a batch (``batch``, ``N``) takes `batch`; like a sequence
    (``seq``, ``sequence_length``) takes `seq`; otherwise a symbolic leading dim is
    the batch and the second the sequence. Anything left raises InputError naming it.
    """
    sizes = dict(dims or {})
    for spec in specs:
        for axis, dim in enumerate(spec.shape):
            if not isinstance(dim, str) or dim in sizes:
                continue
            words = dim.lower().replace("-", "_").split("_")
            if any(w in _BATCH_WORDS for w in words) or dim.lower().startswith("batch"):
                sizes[dim] = batch
            elif any(w in _SEQ_WORDS for w in words) or dim.lower().startswith("seq"):
                sizes[dim] = seq
            elif axis == 0:
                sizes[dim] = batch
            elif axis == 1:
                sizes[dim] = seq
    return sizes


def concrete_shape(spec: TensorSpec, sizes: Mapping[str, int]) -> tuple[int, ...]:
    shape = []
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int):
            shape.append(dim)
        elif isinstance(dim, str) and dim in sizes:
            shape.append(sizes[dim])
        else:
            raise InputError(
                f"input {spec.name!r}: dimension {axis} ({dim or 'unnamed'}) has no size; "
                "set it with --batch/--seq"
            )
    return tuple(shape)


def random_array(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator,
                 high: int | None = None) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, high if high is not None else 100, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise InputError(f"input {spec.name!r}: cannot generate values of type {spec.dtype}")


def make_feeds(
    specs: Sequence[TensorSpec],
    batch: int,
    seq: int,
    seed: int = 0,
    reference_config: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded inputs for every model input; token ids stay inside the vocabulary."""
    sizes = resolve_dims(specs, batch, seq)
    rng = np.random.default_rng(seed)
    vocab = int(reference_config["vocab_size"]) if reference_config else None
    return {
        spec.name: random_array(spec, concrete_shape(spec, sizes), rng, high=vocab)
        for spec in specs
    }
