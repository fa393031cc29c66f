"""Parity tolerance follows the precision a device computes in, never a backend's name."""

import numpy as np

from portable.crosscheck import cross_check
from portable.parity import coarser, compare, tolerance_for
from portable.records import CellResult, Status


def test_tolerance_loosens_to_the_compute_precision_only():
    assert tolerance_for("float32") == 1e-4
    assert tolerance_for("float32", "float16") == 1e-2
    assert tolerance_for("float32", "bfloat16") == 5e-2
    assert tolerance_for("float64", "float32") == 1e-4
    assert coarser(None, "float16", "bfloat16") == "bfloat16" and coarser(None, None) is None


def test_golden_parity_with_a_half_precision_session():
    expected = {"y": np.ones(4, np.float32), "ids": np.arange(4)}
    actual = {"y": expected["y"] + 3e-3, "ids": np.arange(4)}
    assert not compare(actual, expected, "golden").passed
    report = compare(actual, expected, "golden", "float16")
    assert report.passed and report.compute_precision == "float16"
    actual["ids"] = np.array([0, 1, 3, 2])  # chosen experts still must match exactly
    assert not compare(actual, expected, "golden", "float16").passed


def test_cross_backend_parity_uses_the_coarser_side():
    def cell(backend, y, precision=None):
        result = CellResult(backend, {}, "latency", 1, 1, Status.OK, compute_precision=precision)
        result.outputs = {"y": np.asarray(y, np.float32)}
        return result

    cells = [cell("ort-cpu", [1.0, 2.0]), cell("openvino", [1.02, 2.0], "bfloat16"),
             cell("other", [1.02, 2.0])]
    cross_check(cells)
    assert cells[1].cross_parity["passed"]
    assert cells[1].cross_parity["compute_precision"] == "bfloat16"
    assert not cells[2].cross_parity["passed"]
