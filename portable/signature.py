"""An ONNX model's signature (inputs, outputs, metadata), read with `onnx` alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portable.adapter import Dim, TensorSpec
from portable.errors import ModelError


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int | None
    metadata: dict[str, str] = field(default_factory=dict)
    index_bounds: dict[str, int] = field(default_factory=dict)
    """Inputs used as Gather indices into a tensor of known size: their exclusive upper bound."""
    optional_inputs: tuple[TensorSpec, ...] = ()
    """Graph inputs that also have an initializer: a default a caller may override."""


def _dtype_name(elem_type: int) -> str:
    import onnx

    if elem_type == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    if elem_type == onnx.TensorProto.STRING:
        return "str"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def tensor_spec(value_info: Any) -> TensorSpec:
    """The TensorSpec of a graph input or output (symbolic dims by name, unknown as None).

    Some exporters write a dynamic dim as ``-1`` instead of leaving it unnamed: a
    negative size is read as unknown (None), so ``--shape`` can set it, as ONNX
    Runtime and OpenVINO allow. A ``0`` stays a fixed size: both runtimes accept
    only an empty tensor there.
    A value that is not a tensor (sequence, optional, map, sparse tensor) gets that
    kind as its dtype, e.g. ``sequence``, so callers can refuse it by name.
    """
    kind = value_info.type.WhichOneof("value")
    if kind not in (None, "tensor_type"):
        return TensorSpec(value_info.name, (), kind.removesuffix("_type"))
    tensor = value_info.type.tensor_type
    dims: list[Dim] = []
    if tensor.HasField("shape"):
        for d in tensor.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value) if d.dim_value >= 0 else None)
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
    return TensorSpec(value_info.name, tuple(dims), _dtype_name(tensor.elem_type))


def read_signature(model_path: Path) -> Signature:
    """Inputs (graph inputs that are not initializers), outputs, default-domain opset, metadata."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{model_path}: not a readable ONNX model ({exc})") from None
    return signature_of(model)


def signature_of(model: Any) -> Signature:
    """The signature of a loaded ModelProto."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return Signature(
        inputs=tuple(tensor_spec(v) for v in graph.input if v.name not in initializers),
        outputs=tuple(tensor_spec(v) for v in graph.output),
        opset=opset,
        metadata={p.key: p.value for p in model.metadata_props},
        index_bounds=index_bounds(graph),
        optional_inputs=tuple(tensor_spec(v) for v in graph.input if v.name in initializers),
    )


_GATHERS = ("Gather", "GatherElements")


def index_bounds(graph: Any) -> dict[str, int]:
    """Graph inputs that index a tensor of known size, directly or through a Cast.

    A token-id input feeding an embedding's Gather must stay below the table's
    row count, or the runtime fails on the first run.
    """
    sizes: dict[str, list[Dim]] = {init.name: list(init.dims) for init in graph.initializer}
    sizes.update({v.name: list(tensor_spec(v).shape) for v in graph.input if v.name not in sizes})
    inputs = {v.name for v in graph.input if v.name not in {i.name for i in graph.initializer}}
    through_cast = {n.output[0]: n.input[0] for n in graph.node
                    if n.op_type == "Cast" and n.input and n.input[0] in inputs}
    bounds: dict[str, int] = {}
    for node in graph.node:
        if node.op_type not in _GATHERS or len(node.input) < 2:
            continue
        source = through_cast.get(node.input[1], node.input[1])
        data = sizes.get(node.input[0])
        if source not in inputs or not data:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0) % len(data)
        if isinstance(data[axis], int) and data[axis] > 0:
            bounds[source] = min(bounds.get(source, data[axis]), data[axis])
    return bounds
