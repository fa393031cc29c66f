"""A model's files through Ray's object store, checked by sha256 where they land.

No shared filesystem is assumed between the client and the nodes: the client puts
each file's bytes into the object store once per model (a preset is exported on the
client only), with the digest it computed; a node writes them to a temporary folder
and refuses any file whose bytes do not match the digest sent with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from portable.errors import ModelError
from portable.modelsource import ModelSource, all_tensors


@dataclass(frozen=True)
class ShippedFile:
    name: str
    """Path relative to the model's folder on the client (and the temporary one on the node)."""
    sha256: str
    blob: Any
    """Ray ObjectRef of the file's bytes."""


@dataclass(frozen=True)
class Shipment:
    """A model's file, its external-data files and its golden file, in the object store."""

    files: tuple[ShippedFile, ...]
    model: str
    golden: str | None


def _model_files(model: ModelSource) -> list[Path]:
    """The ONNX file and the external-data files it names (already checked to stay inside)."""
    import onnx

    folder = model.path.parent
    proto = onnx.load(str(model.path), load_external_data=False)
    names = {next((e.value for e in t.external_data if e.key == "location"), "")
             for t in all_tensors(proto.graph) if t.data_location == onnx.TensorProto.EXTERNAL}
    return [model.path, *(folder / name for name in sorted(names) if name)]


def ship(model: ModelSource) -> Shipment:
    """Put the model's files into the object store once, with their digests."""
    folder = model.path.parent
    paths = _model_files(model)
    if model.golden_path is not None:
        paths.append(model.golden_path)
    files = []
    for path in paths:
        data = path.read_bytes()
        files.append(ShippedFile(path.relative_to(folder).as_posix(),
                                 hashlib.sha256(data).hexdigest(), ray.put(data)))
    golden = model.golden_path.relative_to(folder).as_posix() if model.golden_path else None
    return Shipment(tuple(files), model.path.name, golden)


def receive(shipment: Shipment, folder: Path, model: ModelSource) -> ModelSource:
    """Write the shipped files under `folder`, refusing any whose sha256 differs from the
    client's; return `model` pointing at them."""
    root = folder.resolve()
    for shipped in shipment.files:
        target = (root / shipped.name).resolve()
        if not target.is_relative_to(root):
            raise ModelError(f"shipped file {shipped.name!r} would land outside its folder")
        data = ray.get(shipped.blob)
        if (digest := hashlib.sha256(data).hexdigest()) != shipped.sha256:
            raise ModelError(f"{shipped.name} arrived with sha256 {digest[:16]}..., expected "
                             f"{shipped.sha256[:16]}... as sent; refusing to run it")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    golden = root / shipment.golden if shipment.golden else None
    return dataclasses.replace(model, path=root / shipment.model, golden_path=golden)
