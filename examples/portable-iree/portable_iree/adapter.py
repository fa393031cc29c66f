"""IREE on ``llvm-cpu``: the template for compile-ahead stacks (ATC, TensorRT, TVM). `load()`
reads the signature; the harness calls `specialize(shapes)` per shape set (dynamic_shapes is
False), which pins the symbolic dims and compiles, or reads the module from the artifact
cache, keyed by model digest + shapes + flags + compiler version."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from portable import adapter as api
from portable.environment import cpu_model
from portable.errors import BackendUnavailable, UnsupportedModel
from portable.signature import read_signature

HINT = "pip install portable-iree (iree-base-compiler and iree-base-runtime)"
FLAGS = ("--iree-hal-target-backends=llvm-cpu", "--iree-llvmcpu-target-cpu=host")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise BackendUnavailable(f"{package} is not installed", HINT) from None


def compile_onnx(path: Path, inputs: Sequence[api.TensorSpec]) -> bytes:
    """Pin the model's inputs to `inputs`' shapes, import it and compile it for llvm-cpu."""
    from iree.compiler import CompilerToolError, compile_str, ir
    from iree.compiler.extras import onnx_importer
    model = onnx.load(str(path))
    shapes = {spec.name: spec.shape for spec in inputs}
    for value in model.graph.input:
        pinned = shapes.get(value.name, ())  # inputs the caller did not name stay symbolic
        for dim, size in zip(value.type.tensor_type.shape.dim, pinned, strict=False):
            dim.dim_value = size
    info = onnx_importer.ModelInfo(onnx.shape_inference.infer_shapes(model))
    module = info.create_module(context=ir.Context()).operation
    onnx_importer.NodeImporter.define_function(info.main_graph, module).import_all()
    try:
        return compile_str(module.get_asm(), input_type="onnx", extra_args=list(FLAGS))
    except CompilerToolError as exc:
        lines = str(exc).splitlines()
        error = next((ln.split("error: ", 1)[1] for ln in lines if "error: " in ln), lines[0])
        ops = sorted({ln.split('"onnx.', 1)[1].split('"')[0] for ln in lines if '"onnx.' in ln})
        raise UnsupportedModel(f"IREE llvm-cpu cannot compile {', '.join(ops) or 'the model'} "
                               f"at {dict(shapes)}: {error.strip()}") from None


class IreeSession(api.Session):
    def __init__(self, path: Path, config: api.SessionConfig):
        self.inputs, self.outputs = (sig := read_signature(path)).inputs, sig.outputs
        self._path, self._config = path, config
        graph = onnx.load(str(path), load_external_data=False).graph
        self._entry, self._nodes = graph.name, len(graph.node)  # IREE names the function so
        self._functions: dict[tuple, Any] = {}

    def _artifact(self, inputs: Sequence[api.TensorSpec]) -> tuple[bytes, str]:
        """The compiled module and ``hit``/``miss``/``none`` (no cache folder or digest)."""
        folder, digest = self._config.artifact_dir, self._config.model_sha256
        if folder is None or digest is None:
            return compile_onnx(self._path, inputs), "none"
        key = repr([digest, [(s.name, s.shape) for s in inputs], FLAGS,
                    _version("iree-base-compiler")])
        target = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.vmfb"
        if target.is_file():
            return target.read_bytes(), "hit"
        vmfb = compile_onnx(self._path, inputs)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(vmfb)
        os.replace(tmp, target)  # atomic: a concurrent run reads a whole module or none
        return vmfb, "miss"

    def specialize(self, inputs: Sequence[api.TensorSpec]) -> str:
        import iree.runtime as rt
        vmfb, state = self._artifact(inputs)
        context = rt.SystemContext(config=rt.Config("local-task"))
        context.add_vm_module(rt.VmModule.copy_buffer(context.instance, vmfb))
        self._functions[tuple(s.shape for s in inputs)] = context.modules.module[self._entry]
        return state

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [np.asarray(feeds[spec.name], order="C") for spec in self.inputs]
        function = self._functions[tuple(a.shape for a in arrays)]  # specialized by the harness
        results = function(*arrays)
        results = results if isinstance(results, tuple | list) else (results,)  # one output
        return {spec.name: np.asarray(value.to_host()).astype(spec.dtype, copy=False)
                for spec, value in zip(self.outputs, results, strict=True)}

    def placement(self) -> api.Placement:  # one program for one device: no per-node information
        return api.Placement("cpu", {"cpu": self._nodes}, source="single-device")

    def close(self) -> None:  # idempotent
        self._functions.clear()


class IreeAdapter(api.Adapter):
    name = "iree"  # must equal the entry-point name
    install_hint = HINT
    packages = ("iree-base-compiler", "iree-base-runtime")
    vendor_modules = ("iree",)
    experimental = True

    def probe(self) -> api.DeviceInfo:
        return api.DeviceInfo("cpu", f"IREE llvm-cpu ({cpu_model()})",
                          runtime={p: _version(p) for p in self.packages})

    def capabilities(self) -> api.Capabilities:
        return api.Capabilities(dtypes=("float32", "int64", "int32", "bool"), dynamic_shapes=False)

    def load(self, model_path: Path, config: api.SessionConfig) -> IreeSession:
        return IreeSession(model_path, config)
