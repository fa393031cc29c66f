"""Users' models, built with onnx.helper: several inputs and types, control flow, external data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path, external: bool = False, **kwargs) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], **kwargs)
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.stem + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def multi_input_model(path: Path) -> Path:
    """Five inputs of five types, an optional input, an If node; four outputs of three types.

    x float32 [batch, seq, 8], mask bool [batch, seq], scale int64 [] (a scalar),
    pixels uint8 [2, 3], h float16 [batch, 4]; bias float32 [8] has an initializer.
    y = If(scale > 3, then: (x + bias) * scale, else: -(x + bias)) where mask, else 0;
    count = number of true mask elements; h2 = h * 2 (float16); total = sum(pixels).
    """
    v = helper.make_tensor_value_info
    branch_out = v("branch", TensorProto.FLOAT, None)
    then_graph = helper.make_graph(
        [helper.make_node("Mul", ["xb", "scale_f"], ["branch"])], "then", [], [branch_out])
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["xb"], ["branch"])], "else", [], [branch_out])
    nodes = [
        helper.make_node("Add", ["x", "bias"], ["xb"]),
        helper.make_node("Cast", ["scale"], ["scale_f"], to=TensorProto.FLOAT),
        helper.make_node("Greater", ["scale", "three"], ["big"]),
        helper.make_node("If", ["big"], ["chosen"], then_branch=then_graph,
                         else_branch=else_graph),
        helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
        helper.make_node("Where", ["mask3", "chosen", "zero"], ["y"]),
        helper.make_node("Cast", ["mask"], ["mask_i"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["mask_i"], ["count"], keepdims=0),
        helper.make_node("Add", ["h", "h"], ["h2"]),
        helper.make_node("Cast", ["pixels"], ["pixels_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["pixels_f"], ["total"], keepdims=0),
    ]
    initializers = [
        numpy_helper.from_array(np.linspace(-1, 1, 8, dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array(3, np.int64), "three"),
        numpy_helper.from_array(np.array([-1], np.int64), "last"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
    ]
    graph = helper.make_graph(
        nodes, "multi",
        [v("x", TensorProto.FLOAT, ["batch", "seq", 8]),
         v("mask", TensorProto.BOOL, ["batch", "seq"]),
         v("scale", TensorProto.INT64, []), v("pixels", TensorProto.UINT8, [2, 3]),
         v("h", TensorProto.FLOAT16, ["batch", 4]), v("bias", TensorProto.FLOAT, [8])],
        [v("y", TensorProto.FLOAT, ["batch", "seq", 8]), v("count", TensorProto.INT64, []),
         v("h2", TensorProto.FLOAT16, ["batch", 4]), v("total", TensorProto.FLOAT, [])],
        initializers,
    )
    return _save(graph, path)


def loop_gru_model(path: Path, external: bool = False) -> Path:
    """A GRU over x float32 [time, batch, 4], then a Loop adding its state `steps` times.

    steps int64 [] is the Loop's trip count. The GRU's weights are initializers, so
    with `external` they are written to ``<stem>.data`` beside the model.
    """
    v = helper.make_tensor_value_info
    rng = np.random.default_rng(0)
    hidden = 5
    weights = [
        numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, 4)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, hidden)).astype(np.float32),
                                "R"),
        numpy_helper.from_array(rng.standard_normal((1, 6 * hidden)).astype(np.float32), "B"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "half"], ["acc_out"])],
        "body",
        [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []),
         v("acc_in", TensorProto.FLOAT, None)],
        [v("cond_out", TensorProto.BOOL, []), v("acc_out", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("GRU", ["x", "W", "R", "B"], ["seq_out", "state"], hidden_size=hidden),
        helper.make_node("Loop", ["steps", "", "state"], ["final"], body=body),
    ]
    graph = helper.make_graph(
        nodes, "loop_gru",
        [v("x", TensorProto.FLOAT, ["time", "batch", 4]), v("steps", TensorProto.INT64, [])],
        [v("seq_out", TensorProto.FLOAT, ["time", 1, "batch", hidden]),
         v("final", TensorProto.FLOAT, [1, "batch", hidden])],
        weights,
    )
    return _save(graph, path, external=external)


def image_model(path: Path) -> Path:
    """y = relu(images) with images float32 [N, 3, height, width] and an unnamed-dim input."""
    v = helper.make_tensor_value_info
    unnamed = helper.make_tensor_value_info("extra", TensorProto.FLOAT, [2, None])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["images"], ["y"]),
         helper.make_node("Identity", ["extra"], ["extra_out"])],
        "image",
        [v("images", TensorProto.FLOAT, ["N", 3, "height", "width"]), unnamed],
        [v("y", TensorProto.FLOAT, ["N", 3, "height", "width"]),
         v("extra_out", TensorProto.FLOAT, [2, None])],
    )
    return _save(graph, path)


def custom_op_model(path: Path) -> Path:
    """An op from a domain no backend implements."""
    v = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("FancyOp", ["r"], ["y"], domain="com.example")],
        "custom", [v("x", TensorProto.FLOAT, [2])], [v("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def embedding_model(path: Path, rows: int = 7) -> Path:
    """Token ids (int64) and positions (int32, through a Cast) index two small tables."""
    v = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["emb"]),
         helper.make_node("Cast", ["pos"], ["pos64"], to=TensorProto.INT64),
         helper.make_node("Gather", ["pos_table", "pos64"], ["pos_emb"]),
         helper.make_node("Add", ["emb", "pos_emb"], ["y"])],
        "embedding",
        [v("ids", TensorProto.INT64, ["batch", "seq"]),
         v("pos", TensorProto.INT32, ["batch", "seq"])],
        [v("y", TensorProto.FLOAT, ["batch", "seq", 3])],
        [numpy_helper.from_array(np.arange(rows * 3, dtype=np.float32).reshape(rows, 3), "table"),
         numpy_helper.from_array(np.ones((rows + 2, 3), np.float32), "pos_table")],
    )
    return _save(graph, path)


def identity_model(path: Path, elem_type: int) -> Path:
    """y = x for x of one element type, shape [batch, 3]."""
    v = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [v("x", elem_type, ["batch", 3])], [v("y", elem_type, ["batch", 3])])
    return _save(graph, path)


def stored_dynamic_dims_model(path: Path) -> Path:
    """y = relu(x) with x declared [-1, 3, ?, ?]: a dynamic batch stored as -1, as some
    exporters write it, and unnamed height and width."""
    v = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "stored_dynamic",
        [v("x", TensorProto.FLOAT, [-1, 3, None, None])],
        [v("y", TensorProto.FLOAT, [-1, 3, None, None])],
    )
    return _save(graph, path)


def dropout_model(path: Path) -> Path:
    """softmaxout_1 = Dropout(data_0), the one-op shape of ONNX's test models.

    OpenVINO folds the Dropout away and its input port then carries only the
    output's name: ``data_0`` is found by position, not by name.
    """
    v = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Dropout", ["data_0"], ["softmaxout_1"])], "dropout",
        [v("data_0", TensorProto.FLOAT, [1, 3])], [v("softmaxout_1", TensorProto.FLOAT, [1, 3])],
    )
    return _save(graph, path)


def renamed_output_model(path: Path) -> Path:
    """z = Identity(Relu(x)): OpenVINO's port for z carries {"a", "z"} and names itself "a"."""
    v = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["z"])],
        "renamed", [v("x", TensorProto.FLOAT, ["batch", 3])],
        [v("z", TensorProto.FLOAT, ["batch", 3])],
    )
    return _save(graph, path)


def many_defaults_model(path: Path, count: int = 25) -> Path:
    """y = x + p0 + ... + p{count-1}: every p is an input with an initializer (a default)."""
    v = helper.make_tensor_value_info
    names = [f"p{i}" for i in range(count)]
    nodes, last = [], "x"
    for name in names:
        nodes.append(helper.make_node("Add", [last, name], [f"s_{name}"]))
        last = f"s_{name}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(
        nodes, "defaults",
        [v("x", TensorProto.FLOAT, [2])] + [v(n, TensorProto.FLOAT, [2]) for n in names],
        [v("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones(2, np.float32), n) for n in names],
    )
    return _save(graph, path)


def dense_mlp_model(path: Path) -> Path:
    """A small dense model: y = relu(x @ w1) @ w2, x float32 [batch, seq, 32]."""
    rng = np.random.default_rng(0)
    v = helper.make_tensor_value_info
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w1", (32, 64)), ("w2", (64, 32)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "dense_mlp", [v("x", TensorProto.FLOAT, ["batch", "seq", 32])],
                              [v("y", TensorProto.FLOAT, ["batch", "seq", 32])], weights)
    return _save(graph, path)
