import json

import numpy as np
import pytest
from onnx_models import loop_gru_model, multi_input_model

from portable.crosscheck import cross_check
from portable.harness import WorkItem
from portable.inputs import InputSpec
from portable.launchers import run_in_child
from portable.modelsource import resolve
from portable.records import CellResult, Status
from portable.timing import BenchSettings


def _cell(backend, outputs, inputs=None):
    result = CellResult(backend, {}, "latency", 1, 1, status=Status.OK,
                        inputs=inputs or {"x": {"sha256": "abc"}})
    result.outputs = outputs
    return result


def test_first_backend_is_the_reference_and_arrays_are_dropped():
    ref = {"y": np.array([1.0, 2.0], np.float32), "ids": np.array([3, 4])}
    close = {"y": np.array([1.00001, 2.0], np.float32), "ids": np.array([3, 4])}
    cells = [_cell("a", ref), _cell("b", close)]
    cross_check(cells)
    assert cells[0].cross_parity["role"] == "reference"
    report = cells[1].cross_parity
    assert report["passed"] and report["reference"] == "a outputs"
    assert report["outputs"]["y"]["max_abs_error"] == pytest.approx(1e-5, rel=0.1)
    assert all(cell.outputs is None for cell in cells)
    json.dumps([cell.to_dict() for cell in cells])  # nothing a result file cannot hold


def test_tolerance_follows_dtype_and_integers_must_match():
    ref = {"h": np.array([1.0], np.float16), "f": np.array([1.0], np.float32),
           "ids": np.array([1, 2])}
    other = {"h": np.array([1.005], np.float16), "f": np.array([1.005], np.float32),
             "ids": np.array([1, 3])}
    cells = [_cell("a", ref), _cell("b", other)]
    cross_check(cells)
    outputs = cells[1].cross_parity["outputs"]
    assert outputs["h"]["passed"] and not outputs["f"]["passed"]
    assert not outputs["ids"]["passed"] and outputs["ids"]["mismatched"] == 1
    assert cells[1].check_failed and not cells[0].check_failed


def test_nan_and_inf_are_counted():
    ref = {"y": np.array([np.nan, 1.0, np.inf], np.float32)}
    cells = [_cell("a", ref), _cell("b", {"y": np.array([np.nan, np.nan, np.inf], np.float32)})]
    cross_check(cells)
    assert cells[0].cross_parity["nonfinite"] == {"y": 2}
    out = cells[1].cross_parity["outputs"]["y"]
    assert out["nonfinite"] == 3 and not out["passed"] and out["mismatched"] == 1


def test_different_inputs_fail_even_when_outputs_agree():
    same = {"y": np.zeros(2, np.float32)}
    cells = [_cell("a", same), _cell("b", same, inputs={"x": {"sha256": "other"}})]
    cross_check(cells)
    assert cells[1].check_failed and "inputs differ" in cells[1].cross_parity["note"]


def test_nothing_to_compare_with_one_cell_that_ran():
    cells = [_cell("a", {"y": np.zeros(1)}), CellResult("b", {}, "latency", 1, 1, Status.CRASHED)]
    cross_check(cells)
    assert cells[0].cross_parity is None and cells[0].outputs is None


@pytest.mark.slow
@pytest.mark.parametrize("build", [multi_input_model, loop_gru_model])
def test_two_real_sessions_in_child_processes_agree(tmp_path, build):
    """ORT with graph optimizations off vs all on: two real stacks of kernels, same inputs."""
    source = resolve(str(build(tmp_path / "m.onnx")))
    settings = BenchSettings(batch=2, seq=5, warmup=0, iterations=1, min_duration_s=0.0, seed=3)
    given = InputSpec(values={"steps": ("4",)}) if build is loop_gru_model else InputSpec()
    cells = [
        run_in_child(WorkItem("ort-cpu", {"graph_optimization_level": level}, source, settings,
                              inputs=given, keep_outputs=True), timeout_s=120)
        for level in ("disable", "all")
    ]
    assert [c.status for c in cells] == ["ok", "ok"], cells
    assert cells[0].inputs == cells[1].inputs
    cross_check(cells)
    report = cells[1].cross_parity
    assert report["reference"] == "ort-cpu(graph_optimization_level=disable) outputs"
    assert report["passed"], report
    expected = {"y", "count", "h2", "total"} if build is multi_input_model else {"seq_out",
                                                                                 "final"}
    assert set(report["outputs"]) == expected
