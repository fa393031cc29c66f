"""fp16 / bf16 variants of an fp32 ONNX graph: weights and activations in the lower type.

`cast_model(model, "float16")` rewrites every float32 tensor of the graph, subgraphs (the
sparse dispatch's `If` branches) included, to the lower type: initializers, `Constant` and
`ConstantOfShape` values, `Cast(to=FLOAT)` targets and declared value types. The graph's
own float inputs and outputs keep float32 (a `Cast` at each boundary), so the documented
signature (`logits` float32, `expert_ids` int64) does not change.

An op whose ONNX schema does not accept the lower type on some input (at opset 18:
`TopK`, `Range` and `CumSum` take no bfloat16, for example) computes in float32 between a
`Cast` up and a `Cast` down; which ops those are is read from the ONNX schemas, not listed
by hand. Whether a runtime has kernels for the rest is the runtime's business: a backend
that lacks one reports the model as unsupported, naming the op.

onnxconverter-common's `convert_float_to_float16` was tried first; it breaks graphs whose
`If` branches read outer-scope values (the checker rejects its output).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import ml_dtypes
import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
#: numpy dtype name -> (ONNX element type, numpy dtype used to round the values).
LOW_TYPES = {
    "float16": (TensorProto.FLOAT16, np.dtype(np.float16)),
    "bfloat16": (TensorProto.BFLOAT16, np.dtype(ml_dtypes.bfloat16)),
}


def cast_model(model: onnx.ModelProto, dtype: str) -> onnx.ModelProto:
    """A copy of `model` computing in `dtype` ("float16" or "bfloat16"), IO types kept."""
    elem, np_dtype = LOW_TYPES[dtype]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    opset = next(o.version for o in out.opset_import if o.domain in ("", "ai.onnx"))
    # Types of every value before the rewrite, to know which inputs of a kept op are float.
    inferred = onnx.shape_inference.infer_shapes(model)
    float_names = {vi.name for vi in _value_infos(inferred.graph)
                   if vi.type.tensor_type.elem_type == FLOAT}
    float_names |= {t.name for t in _initializers(inferred.graph) if t.data_type == FLOAT}
    names = _Names(out.graph)
    _cast_graph(out.graph, elem, np_dtype, opset, float_names, names)
    _keep_io_float(out.graph, elem, names)
    return out


class _Names:
    """Fresh tensor/node names that collide with nothing in the model."""

    def __init__(self, graph: GraphProto):
        self._counter = itertools.count()
        self._used = {n for vi in _value_infos(graph) for n in (vi.name,)}
        self._used |= {o for node in _nodes(graph) for o in (*node.input, *node.output)}

    def __call__(self, base: str) -> str:
        while True:
            name = f"{base}__lowp{next(self._counter)}"
            if name not in self._used:
                self._used.add(name)
                return name


def _nodes(graph: GraphProto) -> Iterator[NodeProto]:
    for node in graph.node:
        yield node
        for sub in _subgraphs(node):
            yield from _nodes(sub)


def _subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def _value_infos(graph: GraphProto) -> Iterator[onnx.ValueInfoProto]:
    yield from itertools.chain(graph.input, graph.output, graph.value_info)
    for node in graph.node:
        for sub in _subgraphs(node):
            yield from _value_infos(sub)


def _initializers(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for sub in _subgraphs(node):
            yield from _initializers(sub)


def _lower(tensor: TensorProto, elem: int, np_dtype: np.dtype) -> TensorProto:
    if tensor.data_type != FLOAT:
        return tensor
    array = numpy_helper.to_array(tensor).astype(np_dtype)
    lowered = numpy_helper.from_array(array, tensor.name)
    assert lowered.data_type == elem
    return lowered


def _accepts(node: NodeProto, opset: int, elem: int, float_inputs: list[int],
             float_outputs: list[int]) -> bool:
    """Whether the op's schema lets these float inputs and outputs be of type `elem`."""
    if node.op_type == "Cast" and node.domain == "":
        return True
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return False
    allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
    wanted = f"tensor({helper.tensor_dtype_to_string(elem).removeprefix('TensorProto.').lower()})"
    for params, indices in ((schema.inputs, float_inputs), (schema.outputs, float_outputs)):
        for i in indices:
            param = params[min(i, len(params) - 1)]
            if wanted not in allowed.get(param.type_str, [param.type_str]):
                return False
    return True


def _cast_graph(graph: GraphProto, elem: int, np_dtype: np.dtype, opset: int,
                float_names: set[str], names: _Names) -> None:
    lowered = [_lower(t, elem, np_dtype) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(lowered)
    for vi in itertools.chain(graph.input, graph.output, graph.value_info):
        if vi.type.tensor_type.elem_type == FLOAT:
            vi.type.tensor_type.elem_type = elem
    rewritten: list[NodeProto] = []
    for node in graph.node:
        for sub in _subgraphs(node):
            _cast_graph(sub, elem, np_dtype, opset, float_names, names)
        float_inputs = [i for i, name in enumerate(node.input) if name in float_names]
        float_outputs = [i for i, name in enumerate(node.output) if name in float_names]
        if _accepts(node, opset, elem, float_inputs, float_outputs):
            _lower_attributes(node, elem, np_dtype)
            rewritten.append(node)
            continue
        # Kept in float32: cast its float inputs up and its float outputs back down.
        for i in float_inputs:
            up = names(node.input[i])
            rewritten.append(helper.make_node("Cast", [node.input[i]], [up], to=FLOAT,
                                              name=names("cast_up")))
            node.input[i] = up
        downs = []
        for i in float_outputs:
            name = node.output[i]
            wide = names(name)
            node.output[i] = wide
            downs.append(helper.make_node("Cast", [wide], [name], to=elem,
                                          name=names("cast_down")))
        rewritten.extend([node, *downs])
    del graph.node[:]
    graph.node.extend(rewritten)


def _lower_attributes(node: NodeProto, elem: int, np_dtype: np.dtype) -> None:
    """Constant values and Cast targets of a node that now computes in `elem`."""
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR:
            attr.t.CopyFrom(_lower(attr.t, elem, np_dtype))
        elif node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
            attr.i = elem
    if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
        # The default value is a float32 zero.
        zero = numpy_helper.from_array(np.zeros(1, np_dtype))
        node.attribute.append(helper.make_attribute("value", zero))


def _keep_io_float(graph: GraphProto, elem: int, names: _Names) -> None:
    """The main graph's float inputs and outputs stay float32, with a Cast at each."""
    head, tail = [], []
    for vi in graph.input:
        if vi.type.tensor_type.elem_type != elem:
            continue
        vi.type.tensor_type.elem_type = FLOAT
        inner = names(vi.name)
        for node in _nodes(graph):
            node.input[:] = [inner if x == vi.name else x for x in node.input]
        head.append(helper.make_node("Cast", [vi.name], [inner], to=elem, name=names("cast_in")))
    for vi in graph.output:
        if vi.type.tensor_type.elem_type != elem:
            continue
        vi.type.tensor_type.elem_type = FLOAT
        inner = names(vi.name)
        for node in _nodes(graph):
            node.output[:] = [inner if x == vi.name else x for x in node.output]
            node.input[:] = [inner if x == vi.name else x for x in node.input]
        tail.append(helper.make_node("Cast", [inner], [vi.name], to=FLOAT, name=names("cast_out")))
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
