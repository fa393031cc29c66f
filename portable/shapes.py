"""Roles of a model's dimensions: which is the batch, which the sequence, what size a
free dim should get, and what batch and sequence a set of arrays actually has."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from portable.adapter import Dim, TensorSpec

_BATCH_WORDS = ("batch", "n", "b")
_SEQ_WORDS = ("seq", "sequence", "len", "length", "tokens", "time", "t", "s")
_SPATIAL_WORDS = ("height", "width", "h", "w", "img", "image", "size")
_CHANNEL_WORDS = ("channel", "channels", "c")
_IMAGE_SIZE_KEYS = ("imgsz", "image_size", "img_size", "input_size")
_IMAGE_SIDE = 224
"""The usual side of an image classifier's input, when the model does not say."""
_CHANNELS = 3


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


def shape_text(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


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
