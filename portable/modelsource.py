"""Turning `--model` (a preset name or an .onnx path) into a checked ONNX file.

A preset is exported once and cached (with golden outputs from PyTorch). A file
is checked before any backend sees it: it must parse, pass the ONNX checker, and
keep its external data inside its own folder (ONNX has had path-traversal bugs
there). Model files come from anywhere; nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portable.errors import ModelError

GOLDEN_SUFFIX = ".golden.npz"
CONFIG_KEY = "portable.config"
PRECISION_KEY = "portable.precision"


@dataclass(frozen=True)
class ModelSource:
    name: str
    path: Path
    kind: str
    """``preset`` (built-in reference model) or ``file``."""
    golden_path: Path | None
    reference_config: dict[str, Any] | None
    """The reference model's config when the file is one of ours (read from its metadata)."""
    precision: str = "fp32"
    """Storage precision of a reference variant (fp32, fp16, bf16, int8, int4; see
    `portable.models.variants`); a file says it in its `portable.precision` metadata."""

    def golden(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """(inputs, outputs) recorded from PyTorch when the model was exported, if any."""
        arrays = self._golden_arrays()
        if arrays is None:
            return None
        return _prefixed(arrays, "input."), _prefixed(arrays, "output.")

    def golden_reference(self) -> dict[str, np.ndarray]:
        """Reference values recorded beside the golden outputs that are not model outputs
        (``router_scores``: the fp32 gate's selection scores per MoE layer); may be empty."""
        arrays = self._golden_arrays()
        return {} if arrays is None else _prefixed(arrays, "reference.")

    def _golden_arrays(self) -> dict[str, np.ndarray] | None:
        if self.golden_path is None:
            return None
        try:
            with np.load(self.golden_path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except Exception as exc:
            raise ModelError(f"{self.golden_path}: unreadable golden file ({exc})") from None

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "sha256": self.sha256(),
            "golden": self.golden_path is not None,
            "config": self.reference_config,
            "precision": self.precision,
        }


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def looks_like_path(spec: str) -> bool:
    return spec.endswith(".onnx") or "/" in spec or Path(spec).exists()


def resolve(
    spec: str, overrides: Sequence[str] = (), dispatch: str | None = None,
    precision: str | None = None,
) -> ModelSource:
    """A preset name (exported and cached on first use) or the path of an ONNX file.

    `precision` (or a preset name ending in it, `moe-small-int8`) picks a variant of the
    preset, made from its fp32 export on first use and judged against the fp32 golden.
    """
    if looks_like_path(spec):
        if overrides or dispatch or precision:
            raise ModelError(
                "--set, --dispatch and --precision apply to presets, not to an ONNX file")
        return from_file(Path(spec))
    from portable.models.config import apply_overrides, get_preset
    from portable.models.variants import split_variant_name, variant_name
    from portable.precision import check_precision

    preset, suffix = split_variant_name(spec)
    if suffix and precision and suffix != precision:
        raise ModelError(f"--model {spec} names precision {suffix}, but --precision is {precision}")
    precision = check_precision(precision or suffix or "fp32")
    config = apply_overrides(get_preset(preset), overrides)
    if dispatch:
        config = apply_overrides(config, [f"dispatch={dispatch}"])
    from portable.models.variants import cached_variant

    exported = cached_variant(config, precision)
    if exported is None:  # only a cache miss pays for importing torch or the converters
        from portable.models.variants import ensure_variant

        exported = ensure_variant(config, precision)
    name = preset if config == get_preset(preset) else f"{preset}+{config.cache_key()}"
    return ModelSource(
        variant_name(name, precision), exported.onnx_path, "preset", exported.golden_path,
        exported.config.to_dict(), precision,
    )


def from_file(path: Path) -> ModelSource:
    model = check_onnx_file(path)
    meta = {p.key: p.value for p in model.metadata_props}
    config = None
    if CONFIG_KEY in meta:
        try:
            config = json.loads(meta[CONFIG_KEY])
        except json.JSONDecodeError:
            config = None
    golden = path.with_name(path.name.removesuffix(".onnx") + GOLDEN_SUFFIX)
    return ModelSource(
        path.stem, path, "file", golden if golden.is_file() else None, config,
        meta.get(PRECISION_KEY, "fp32"),
    )


def check_onnx_file(path: Path) -> Any:
    """Parse and check an ONNX file; ModelError saying what is wrong otherwise."""
    import onnx

    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a valid ONNX file (cannot parse it: {exc})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path}: not a valid ONNX file (no graph)")
    folder = path.resolve().parent
    for tensor in all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise ModelError(
                f"{path}: external data {location!r} of tensor {tensor.name!r} points outside "
                "the model's folder; refusing to read it"
            )
        if not target.is_file():
            raise ModelError(
                f"{path}: external data file {location!r} of tensor {tensor.name!r} is missing"
            )
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: fails the ONNX checker: {first_line}") from None
    return model


def all_graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph in it (If/Loop/Scan bodies), depth first."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from all_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from all_graphs(sub)


def all_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph holds: initializers and tensor attributes, subgraphs included."""
    import onnx

    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from all_tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from all_tensors(sub)
