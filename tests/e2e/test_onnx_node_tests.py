"""ONNX's own backend node tests, for the ops the reference model uses, through portable's
`onnx.backend.base.Backend` on ort-cpu and openvino. Pass counts are recorded as test
properties (``--junitxml``) and printed (``-s``); the floors catch regressions."""

import onnx
import pytest

from portable.onnx_backend import backend_for, node_tests_for, run_node_tests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def selected(tiny_export):
    return node_tests_for(onnx.load(str(tiny_export.onnx_path)))


def test_selection_covers_the_reference_ops(selected):
    assert len(selected) > 100
    for op in ("matmul", "softmax", "top_k", "gather_elements", "scatternd", "reduce_mean"):
        assert any(name.startswith(f"test_{op}") for name in selected), op
    assert not any("float8" in name.lower() for name in selected)  # dtypes the model never uses


# Floors a little under the counts measured with onnxruntime 1.32 and OpenVINO 2026.4:
# ort-cpu 206/207 (ReduceMax on an empty bool set), openvino 188/200 (TopK tie order,
# ReduceMax on empty sets, optional `axes` inputs left unbound).
@pytest.mark.parametrize("backend, floor", [("ort-cpu", 0.98), ("openvino", 0.9)])
def test_node_tests_pass_on_real_stacks(backend, floor, selected, record_property):
    summary = run_node_tests(backend, selected)
    ran = summary.passed + summary.failed
    record_property(f"{backend}_node_tests", summary.to_dict())
    print(f"{backend}: {summary.passed}/{ran} ONNX node tests passed, {summary.skipped} skipped")
    assert ran >= 0.9 * len(selected)
    assert summary.passed >= floor * ran, summary.failures


def test_backend_is_an_onnx_backend():
    backend = backend_for("cpu")
    assert backend.adapter_name == "ort-cpu"
    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")
