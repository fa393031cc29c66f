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
    """The TensorSpec of a graph input or output (symbolic dims by name, unknown as None)."""
    tensor = value_info.type.tensor_type
    dims: list[Dim] = []
    if tensor.HasField("shape"):
        for d in tensor.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
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
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return Signature(
        inputs=tuple(tensor_spec(v) for v in graph.input if v.name not in initializers),
        outputs=tuple(tensor_spec(v) for v in graph.output),
        opset=opset,
        metadata={p.key: p.value for p in model.metadata_props},
    )
