"""int8 / int4 weight-only variants of an fp32 ONNX graph.

Every large weight is stored quantized, symmetric, with one float32 scale per block of
`block` values along its last (reduction) axis; activations stay float32.

* Plain 2-D matmuls (attention projections, the dense and shared-expert FFNs, the LM head)
  become ONNX Runtime's `com.microsoft::MatMulNBits`, written by ORT's own
  `MatMulNBitsQuantizer`; a `Gemm` with a constant weight is first rewritten as a `MatMul`
  so the quantizer sees it. The routers keep float32 weights: they are small and decide
  the routing, which is what reduced-precision parity watches.
* Weights read through `Gather`/`GatherND` (the stacked routed experts `[N, I, H]`, the
  token embedding) stay quantized in the file and through the gather: the graph gathers
  the quantized rows and their scales, then dequantizes only those, so a decode step reads
  only the chosen experts' quantized bytes. Any other consumer of such a weight (the
  grouped prefill path uses every expert) reads one dequantized copy, computed from
  initializers only, so a runtime may fold it at load time. Standard ONNX ops only:
  `Gather`, `Cast`, `Mul`, `Shape`, `Concat`, `Reshape`; int4 adds `BitwiseAnd`,
  `BitShift` and `Sub` (two 4-bit values per byte, offset by 8), all at opset 18.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import GraphProto, NodeProto, TensorProto, helper, numpy_helper

from .float_cast import _nodes, _subgraphs

#: bits -> values per scale block.
BLOCK = {8: 64, 4: 32}
#: bits -> MatMulNBits accuracy_level. ORT 1.32's CPU kernel for 8-bit weights is ~6x slower
#: at decode with float activations (level 0) than with int8 activations (level 4), whose
#: agreement with the reference was the same within noise on moe-small.
ACCURACY_LEVEL = {8: 4, 4: None}
#: Weights with fewer values than this stay float32 (norms, biases, tiny projections).
MIN_VALUES = 4096
#: Initializer names containing this stay float32: the gates decide the routing.
KEEP_FLOAT = ("router",)


def quantize_model(model: onnx.ModelProto, bits: int) -> onnx.ModelProto:
    """A copy of `model` with its large weights stored in `bits` (8 or 4) bits."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    if bits not in BLOCK:
        raise ValueError(f"bits must be one of {sorted(BLOCK)}, got {bits}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    _gemm_to_matmul(out.graph)
    _quantize_gathered(out.graph, bits, BLOCK[bits])
    excluded = [n.name for n in out.graph.node if n.op_type == "MatMul"
                and any(k in x for x in n.input for k in KEEP_FLOAT)]
    # ORT's quantizer logs every node it visits at INFO.
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(out, bits=bits, block_size=BLOCK[bits], is_symmetric=True,
                                     accuracy_level=ACCURACY_LEVEL[bits],
                                     nodes_to_exclude=excluded)
    quantizer.process()
    return quantizer.model.model


def _large_float(tensor: TensorProto) -> bool:
    return (tensor.data_type == TensorProto.FLOAT and len(tensor.dims) >= 2
            and int(np.prod(tensor.dims)) >= MIN_VALUES
            and not any(k in tensor.name for k in KEEP_FLOAT))


def _gemm_to_matmul(graph: GraphProto) -> None:
    """`Gemm(A, W, [C])` with a constant W, alpha = beta = 1, no transA -> `MatMul` (+ `Add`)."""
    inits = {t.name: t for t in graph.initializer}
    nodes: list[NodeProto] = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = inits.get(node.input[1]) if node.op_type == "Gemm" else None
        if (weight is None or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0
                or attrs.get("transA", 0)):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight)
        name = weight.name + (".T" if attrs.get("transB", 0) else ".mm")
        graph.initializer.append(
            numpy_helper.from_array(np.ascontiguousarray(w.T if attrs.get("transB", 0) else w),
                                    name))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        product = node.output[0] + ".mm" if bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [product],
                                      name=node.name))
        if bias:
            nodes.append(helper.make_node("Add", [product, bias], [node.output[0]],
                                          name=node.name + ".bias"))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {x for n in _nodes(graph) for x in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def block_quantize(w: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric blocks along the last axis: (values [..., K/block, block] (int4: two per
    byte, [..., K/block, block/2] uint8), scales [..., K/block, 1] float32)."""
    qmax = 2 ** (bits - 1) - 1
    blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block).astype(np.float32)
    scale = np.abs(blocks).max(axis=-1, keepdims=True) / qmax
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    q = np.clip(np.rint(blocks / scale), -qmax, qmax).astype(np.int8)
    if bits == 8:
        return q, scale
    u = (q + 8).astype(np.uint8)  # 1..15
    half = block // 2
    return (u[..., :half] | (u[..., half:] << 4)).astype(np.uint8), scale


def block_dequantize(q: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of `block_quantize` in numpy (what the graph computes), shape [..., K]."""
    if bits == 4:
        q = np.concatenate([q & 15, q >> 4], axis=-1).astype(np.float32) - 8
    values = q.astype(np.float32) * scale
    return values.reshape(*values.shape[:-2], -1)


class _Builder:
    """Appends dequantizing nodes to a list, with fresh names and shared constants."""

    def __init__(self, graph: GraphProto, bits: int):
        self.graph, self.bits = graph, bits
        self._count = itertools.count()
        self._consts: dict[str, str] = {}

    def name(self, base: str) -> str:
        return f"{base}__q{self.bits}_{next(self._count)}"

    def const(self, key: str, array: np.ndarray) -> str:
        """A main-graph initializer (outer scope: visible inside If branches too)."""
        if key not in self._consts:
            name = self.name(key)
            self.graph.initializer.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def dequantize(self, q: str, scale: str, out: str, k: int) -> list[NodeProto]:
        """Nodes computing `out` [..., k] float32 from blocks `q` and `scale`."""
        nodes = []
        if self.bits == 4:
            lo, hi, both, wide = (self.name("nib") for _ in range(4))
            nodes += [
                helper.make_node("BitwiseAnd", [q, self.const("u8_15", np.array(15, np.uint8))],
                                 [lo]),
                helper.make_node("BitShift", [q, self.const("u8_4", np.array(4, np.uint8))],
                                 [hi], direction="RIGHT"),
                helper.make_node("Concat", [lo, hi], [both], axis=-1),
                helper.make_node("Cast", [both], [wide], to=TensorProto.FLOAT),
            ]
            values = self.name("centred")
            nodes.append(helper.make_node("Sub", [wide, self.const("f8", np.array(8, np.float32))],
                                          [values]))
        else:
            values = self.name("values")
            nodes.append(helper.make_node("Cast", [q], [values], to=TensorProto.FLOAT))
        scaled, lead, shape = self.name("scaled"), self.name("lead"), self.name("shape")
        nodes += [
            helper.make_node("Mul", [values, scale], [scaled]),
            helper.make_node("Shape", [scaled], [lead], end=-2),
            helper.make_node("Concat", [lead, self.const(f"k{k}", np.array([k], np.int64))],
                             [shape], axis=0),
            helper.make_node("Reshape", [scaled, shape], [out]),
        ]
        for node in nodes:
            node.name = self.name("dq")
        return nodes


def _gathers(graph: GraphProto) -> Iterator[tuple[GraphProto, NodeProto]]:
    for node in graph.node:
        yield graph, node
        for sub in _subgraphs(node):
            yield from _gathers(sub)


def _quantize_gathered(graph: GraphProto, bits: int, block: int) -> None:
    """Weights read through Gather(axis 0)/GatherND stay quantized through the gather."""
    build = _Builder(graph, bits)
    consumers: dict[str, list[tuple[GraphProto, NodeProto]]] = {}
    for owner, node in _gathers(graph):
        for x in node.input:
            consumers.setdefault(x, []).append((owner, node))
    for tensor in list(graph.initializer):
        uses = consumers.get(tensor.name, [])
        gathered = [(g, n) for g, n in uses if _gathers_rows(n, tensor.name)]
        k = tensor.dims[-1] if tensor.dims else 0
        tensor_block = math.gcd(k, block)  # a smaller block where K is not a multiple
        if not gathered or not _large_float(tensor) or tensor_block < 8:
            continue
        q, scale = block_quantize(numpy_helper.to_array(tensor), bits, tensor_block)
        q_name, s_name = tensor.name + f".q{bits}", tensor.name + ".scale"
        graph.initializer.remove(tensor)
        graph.initializer.extend([numpy_helper.from_array(q, q_name),
                                  numpy_helper.from_array(scale, s_name)])
        for owner, node in gathered:
            _rewrite_gather(owner, node, q_name, s_name, build, k)
        _dequantize_for_others(uses, gathered, tensor.name, q_name, s_name, build, k)


def _dequantize_for_others(uses: list[tuple[GraphProto, NodeProto]],
                           gathered: list[tuple[GraphProto, NodeProto]], name: str,
                           q_name: str, s_name: str, build: _Builder, k: int) -> None:
    """Other consumers read one dequantized copy, made at the head of their own (sub)graph,
    so a branch that does not run (the grouped path at decode) does not pay for it."""
    by_graph: dict[int, tuple[GraphProto, list[NodeProto]]] = {}
    for owner, node in uses:
        if any(node is n for _, n in gathered):
            continue
        by_graph.setdefault(id(owner), (owner, []))[1].append(node)
    for owner, nodes in by_graph.values():
        copy = build.name(name + ".dq")
        for node in nodes:
            node.input[:] = [copy if x == name else x for x in node.input]
        head = build.dequantize(q_name, s_name, copy, k)
        for offset, new in enumerate(head):
            owner.node.insert(offset, new)


def _gathers_rows(node: NodeProto, name: str) -> bool:
    """Whether `node` gathers whole leading-axis slices of `name` (its data input)."""
    if not node.input or node.input[0] != name or node.domain not in ("", "ai.onnx"):
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Gather":
        return attrs.get("axis", 0) == 0
    return node.op_type == "GatherND" and attrs.get("batch_dims", 0) == 0


def _rewrite_gather(owner: GraphProto, node: NodeProto, q_name: str, s_name: str,
                    build: _Builder, k: int) -> None:
    """node(W, idx) -> dequantize(node(Wq, idx), node(scale, idx)), in place in `owner`."""
    q_rows, s_rows = build.name("q_rows"), build.name("s_rows")
    index = list(owner.node).index(node)
    gather_q, gather_s = NodeProto(), NodeProto()
    for copy, data, out in ((gather_q, q_name, q_rows), (gather_s, s_name, s_rows)):
        copy.CopyFrom(node)
        copy.input[0] = data
        copy.output[0] = out
        copy.name = build.name(node.name or "gather")
    replacement = [gather_q, gather_s, *build.dequantize(q_rows, s_rows, node.output[0], k)]
    owner.node.remove(node)
    for offset, new in enumerate(replacement):
        owner.node.insert(index + offset, new)
