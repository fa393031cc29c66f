"""What is in an ONNX model, and which backends say they can run all of it.

Read with `onnx` alone and without loading external data: sizes come from the
tensors' shapes, so inspecting a multi-gigabyte model is cheap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portable import registry
from portable.adapter import OpCoverage, TensorSpec
from portable.errors import PortableError, UnsupportedModel
from portable.modelsource import all_graphs, all_tensors
from portable.signature import signature_of


@dataclass(frozen=True)
class ModelSummary:
    path: Path
    ir_version: int
    producer: str
    opsets: dict[str, int]
    """Opset version per domain (``ai.onnx`` for the default domain)."""
    inputs: tuple[TensorSpec, ...]
    optional_inputs: tuple[TensorSpec, ...]
    """Graph inputs that have an initializer: a default the caller may override."""
    outputs: tuple[TensorSpec, ...]
    ops: dict[str, int]
    """Node count per op type (``domain.Op`` outside the default domain), subgraphs included."""
    parameters: int
    """Elements in initializers and constant tensors, subgraphs included."""
    parameter_bytes: int
    external_data: bool

    def to_dict(self) -> dict[str, Any]:
        def specs(items: Sequence[TensorSpec]) -> list[dict[str, Any]]:
            return [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in items]

        return {
            "path": str(self.path),
            "ir_version": self.ir_version,
            "producer": self.producer,
            "opsets": self.opsets,
            "inputs": specs(self.inputs),
            "optional_inputs": specs(self.optional_inputs),
            "outputs": specs(self.outputs),
            "ops": self.ops,
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "external_data": self.external_data,
        }


def _nodes(graph: Any) -> Iterator[Any]:
    for each in all_graphs(graph):
        yield from each.node


def _tensor_size(tensor: Any) -> tuple[int, int]:
    """(elements, bytes) of a TensorProto from its dims and type, without reading its data."""
    import numpy as np
    import onnx

    elements = int(np.prod(tensor.dims)) if tensor.dims else 1
    if tensor.data_type == onnx.TensorProto.STRING:
        return elements, sum(len(s) for s in tensor.string_data)
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        itemsize = 0
    return elements, elements * itemsize


def summarize(path: Path) -> ModelSummary:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    signature = signature_of(model)
    ops = Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        for node in _nodes(graph)
    )
    elements = size = 0
    external = False
    for tensor in all_tensors(graph):
        n, b = _tensor_size(tensor)
        elements += n
        size += b
        external |= tensor.data_location == onnx.TensorProto.EXTERNAL
    return ModelSummary(
        path=path,
        ir_version=model.ir_version,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        opsets={o.domain or "ai.onnx": o.version for o in model.opset_import},
        inputs=signature.inputs,
        optional_inputs=signature.optional_inputs,
        outputs=signature.outputs,
        ops=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        parameters=elements,
        parameter_bytes=size,
        external_data=external,
    )


def _expands_to_function(op: str, summary: ModelSummary) -> bool:
    """A standard op without a kernel of its own still runs when ONNX defines it as a function."""
    import onnx

    if "." in op:
        return False
    try:
        schema = onnx.defs.get_schema(op, summary.opsets.get("ai.onnx", 1))
    except onnx.defs.SchemaError:
        return False
    return bool(schema.has_function or schema.has_context_dependent_function)


@dataclass(frozen=True)
class BackendSupport:
    backend: str
    verdict: str
    """``yes`` (every op listed as supported), ``no``, ``unknown`` or ``unavailable``."""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "verdict": self.verdict, "detail": self.detail}


def _from_coverage(name: str, coverage: OpCoverage) -> BackendSupport:
    if coverage.unsupported:
        return BackendSupport(name, "no", f"{coverage.source}: cannot run "
                              + ", ".join(coverage.unsupported))
    return BackendSupport(name, "yes", f"{coverage.source}: all {coverage.ops} ops placed")


def _coverage(name: str, path: Path) -> BackendSupport | None:
    """A built-in adapter's own answer for this model (`op_coverage`), where it gives one."""
    try:
        coverage = registry.create(name).op_coverage(path)
    except UnsupportedModel as exc:
        return BackendSupport(name, "no", str(exc))
    except PortableError as exc:
        return BackendSupport(name, "unavailable", str(exc))
    return None if coverage is None else _from_coverage(name, coverage)


def backend_support(summary: ModelSummary, names: Sequence[str],
                    skip_hidden: bool = False) -> list[BackendSupport]:
    """For each backend: does the runtime report an implementation of every op in the model?

    The runtime's answer for this model where a built-in adapter gives one
    (`op_coverage`, e.g. OpenVINO's `query_model`), else what
    `capabilities().supported_ops` lists; a backend that can say neither is
    "unknown", never guessed to be fine. Third-party adapters are asked in a child
    process (see `portable.probe_isolated`).
    """
    from portable.probe_isolated import is_third_party, probe

    rows = []
    for name in names:
        report = probe(name)
        status = report.status
        if skip_hidden and status.hidden:
            continue
        if not status.available:
            reason = status.reason + (f" ({status.hint})" if status.hint else "")
            rows.append(BackendSupport(name, "unavailable", reason))
            continue
        if report.capabilities_error:
            rows.append(BackendSupport(name, "unavailable", report.capabilities_error))
            continue
        answer = None if is_third_party(name) else _coverage(name, summary.path)
        if answer is not None:
            rows.append(answer)
            continue
        supported = report.supported_ops
        if supported is None:
            rows.append(BackendSupport(name, "unknown", "the runtime does not list its ops"))
            continue
        missing = [
            op for op in summary.ops
            if op.rpartition(".")[2] not in supported and not _expands_to_function(op, summary)
        ]
        if missing:
            rows.append(BackendSupport(name, "no", "no kernel for " + ", ".join(missing)))
        else:
            rows.append(BackendSupport(name, "yes", f"all {len(summary.ops)} op types listed"))
    return rows
