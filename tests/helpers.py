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


def result_document(cells: dict, model: str = "add", config: dict | None = None) -> dict:
    """A schema-valid result document with an ok cell per (backend, batch) -> raw latencies (ns).

    A value that is a string instead of latencies makes a failed cell with that status.
    """
    from portable.results import build_document
    from portable.stats import median_ci, summarize_ns
    from portable.timing import BenchSettings

    results = []
    for (backend, batch), raw in cells.items():
        cell = {"backend": backend, "options": {}, "scenario": "latency", "batch": batch,
                "seq": 8, "device": None, "status": "ok", "error": None}
        if isinstance(raw, str):
            cell.update(status=raw, error={"type": "Crash", "message": raw, "hint": ""})
        else:
            raw = [int(v) for v in raw]
            latency = {**summarize_ns(raw), "median_ci": median_ci(raw)}
            per_s = batch * 1000 / latency["mean"]
            cell.update(latency=latency, raw_latency_ns=raw,
                        throughput={"samples_per_s": per_s, "tokens_per_s": per_s * 8},
                        rules={"met": True, "reason": "", "warmup": 1, "min_iterations": 1,
                               "min_duration_s": 0.0, "max_duration_s": 1.0, "duration_s": 1.0},
                        memory={"peak_rss_bytes": 1 << 20}, parity=None)
        results.append(cell)
    source = {"name": model, "kind": "preset" if config else "file", "sha256": "0" * 64,
              "config": config, "golden": False}
    return build_document(source, BenchSettings().to_dict(), results)


def latencies(median_ms: float, n: int = 400, seed: int = 0):
    """Log-normal latencies around `median_ms`, like a real run's skewed distribution."""
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(np.log(median_ms * 1e6), 0.05, n))
