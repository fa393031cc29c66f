"""Small ONNX models built with onnx.helper, for tests that need no export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def add_model(path: Path, batch_dim: str = "batch") -> Path:
    """y = x + 1 with x: float32 [batch, 4]."""
    one = numpy_helper.from_array(np.ones((1, 4), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 4])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def contrib_op_model(path: Path, op_type: str = "MoE", domain: str = "com.microsoft") -> Path:
    """One node of a contrib op (by default com.microsoft::MoE, as a fused MoE export uses)."""
    names = ["x", "router", "w1", "w2"]
    graph = helper.make_graph(
        [helper.make_node(op_type, names, ["y"], domain=domain, k=1)],
        "contrib",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 4]) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
