"""Turning `--model` (a preset name or an .onnx path) into a checked ONNX file.

A preset is exported once and cached (with golden outputs from PyTorch). A file
is checked before any backend sees it: it must parse, pass the ONNX checker, and
keep its external data inside its own folder (ONNX has had path-traversal bugs
there). Model files come from anywhere; nothing here unpickles anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portable.errors import ModelError, condense_message
from portable.paths import cache_dir
from portable.precision import check_precision, split_variant_name

log = logging.getLogger(__name__)

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
    generation_path: Path | None = None
    """A decoder with a KV cache: its golden greedy generation, when it has one."""

    def golden_generation(self) -> dict[str, np.ndarray] | None:
        """`prompt_ids`, `token_ids` and `margins` of the golden greedy generation, if any."""
        if self.generation_path is None:
            return None
        try:
            with np.load(self.generation_path, allow_pickle=False) as data:
                return {key: data[key] for key in ("prompt_ids", "token_ids", "margins")}
        except Exception as exc:
            raise ModelError(f"{self.generation_path}: unreadable golden generation "
                             f"({type(exc).__name__}: {exc})") from None

    def golden(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """(inputs, outputs) recorded from PyTorch when the model was exported, if any."""
        arrays = self._golden_arrays()
        if arrays is None:
            return None
        outputs = _prefixed(arrays, "output.")
        if not outputs:  # nothing to compare with: parity would pass vacuously
            log.warning("%s holds no output.* arrays; running without golden parity",
                        self.golden_path)
            return None
        return _prefixed(arrays, "input."), outputs

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
        """The file's digest, read once per instance: it is pickled with the instance, so
        work items planned from one source do not each re-read a large model."""
        cached = self.__dict__.get("_sha256")
        if cached is None:
            digest = hashlib.sha256()
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            cached = digest.hexdigest()
            object.__setattr__(self, "_sha256", cached)  # frozen: a cache, not a field
        return cached

    def recorded_path(self) -> str:
        """The path as a result file records it: a cached export as ``<cache>/...``."""
        if self.kind == "preset":
            with contextlib.suppress(ValueError):
                inside = self.path.resolve().relative_to(cache_dir().resolve())
                return f"<cache>/{inside.as_posix()}"
        return str(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.recorded_path(),
            "sha256": self.sha256(),
            "golden": self.golden_path is not None,
            "config": self.reference_config,
            "precision": self.precision,
            "size_bytes": self.path.stat().st_size,
        }


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def looks_like_path(spec: str) -> bool:
    """A separator or ``.onnx`` makes a path; a preset name wins over a folder of that name."""
    from portable import reference

    if spec.endswith(".onnx") or "/" in spec or os.sep in spec:
        return True
    try:
        return spec not in reference.presets() and Path(spec).exists()
    except (OSError, ValueError):  # a name no file can have (too long, a NUL byte)
        return False


def resolve(
    spec: str, overrides: Sequence[str] = (), dispatch: str | None = None,
    progress: Callable[[str], None] | None = None, with_past: bool = False,
    precision: str | None = None,
) -> ModelSource:
    """A preset name (exported and cached on first use) or the path of an ONNX file.

    A preset's first export can take a minute (moe-base): `progress` is told when
    one starts and how long it took, so a command can say so on stderr. `with_past`
    asks for a preset's decoder with a KV cache (the generation scenario). `precision`
    (or a preset name ending in it, `moe-small-int8`) picks a variant of the preset,
    made from its fp32 export on first use and judged against the fp32 golden.
    """
    if looks_like_path(spec):
        if overrides or dispatch or precision:
            raise ModelError(
                "--set, --dispatch and --precision apply to presets, not to an ONNX file")
        return from_file(Path(spec))
    from portable import reference

    found = reference.hook()
    preset, suffix = split_variant_name(spec)
    if found is None or preset not in found.presets:
        known = ", ".join(found.presets) if found else "none (no reference model installed)"
        raise ModelError(f"unknown model preset {spec!r}; known presets: {known}; "
                         "or give the path of an .onnx file")
    if suffix and precision and suffix != precision:
        raise ModelError(f"--model {spec} names precision {suffix}, but --precision is {precision}")
    exported = found.export(preset, overrides, dispatch, progress, with_past,
                            check_precision(precision or suffix or "fp32"))
    return ModelSource(exported.name, exported.path, "preset", exported.golden_path,
                       exported.config, exported.precision, exported.generation_path)


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

    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:
        raise ModelError(f"{str(path)[:200]}: not a usable file name ({exc})") from None
    if not exists:
        raise ModelError(f"{path}: no such file")
    if not is_file:
        raise ModelError(f"{path}: not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a valid ONNX file (cannot parse it: {exc})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path}: not a valid ONNX file (no graph)")
    if not model.graph.output:
        raise ModelError(f"{path}: the graph has no outputs, so there is nothing to run")
    _check_opsets(path, model)
    folder = path.resolve().parent
    for tensor in all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        _check_external_data(path, folder, tensor)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        reason = condense_message(str(exc)) or type(exc).__name__
        raise ModelError(f"{path}: fails the ONNX checker: {reason}") from None
    return model


def _check_opsets(path: Path, model: Any) -> None:
    """An ai.onnx opset newer than any this onnx release knows is not a released opset."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelError(
                f"{path}: imports ai.onnx opset {opset.version}, newer than the newest "
                f"released opset this onnx knows ({newest}); no runtime here can run it")


def _check_external_data(path: Path, folder: Path, tensor: Any) -> None:
    """An external-data location must name an existing file inside the model's folder."""
    location = next((e.value for e in tensor.external_data if e.key == "location"), "")
    where = f"{path}: external data {location[:80]!r} of tensor {tensor.name[:80]!r}"
    if "\0" in location:
        raise ModelError(f"{where} contains a NUL byte; refusing to read it")
    try:
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise ModelError(f"{where} points outside the model's folder; refusing to read it")
        found = target.is_file()
    except OSError as exc:  # a name too long, or otherwise not a usable path
        raise ModelError(f"{where} is not a usable file name ({exc.strerror or exc})") from None
    if not found:
        raise ModelError(f"{where} names a missing file")


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
