"""Contract 1.1 in the harness: a static-shape stack is specialized per shape set, and the
compile time and artifact cache state land in the result (the hidden null backend, static)."""

import pytest

from portable.harness import WorkItem, run_work_item
from portable.modelsource import ModelSource
from portable.timing import BenchSettings


def cell(options, tiny_export):
    settings = BenchSettings(batch=1, seq=8, warmup=1, iterations=2, min_duration_s=0)
    model = ModelSource("moe-tiny", tiny_export.onnx_path, "preset", tiny_export.golden_path,
                        tiny_export.config.to_dict())
    return run_work_item(WorkItem("null", options, model, settings)).to_dict()


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTABLE_CACHE", str(tmp_path))
    return tmp_path / "artifacts" / "null"


def test_each_shape_set_compiles_once_and_a_second_run_hits(tiny_export, artifacts):
    first = cell({"static_shapes": "true"}, tiny_export)
    assert first["status"] == "ok", first["error"]
    assert first["artifact_cache"] == "miss" and first["compile_ms"] >= 0
    # the run's shapes, then the golden parity shapes: two shape sets, each asked for once
    assert [c["shapes"] for c in first["compile"]] == [{"input_ids": [1, 8]},
                                                        {"input_ids": [4, 64]}]
    assert len(list(artifacts.iterdir())) == 2
    second = cell({"static_shapes": "true"}, tiny_export)
    assert second["artifact_cache"] == "hit"
    assert [c["artifact_cache"] for c in second["compile"]] == ["hit", "hit"]


def test_dynamic_stacks_compile_nothing_ahead(tiny_export, artifacts):
    result = cell({}, tiny_export)
    assert result["artifact_cache"] == "none" and "compile_ms" not in result


def test_unsupported_in_run_is_an_unsupported_cell(tiny_export, artifacts):
    result = cell({"fail": "unsupported_run"}, tiny_export)
    assert result["status"] == "unsupported"
    assert "unsupported on run" in result["error"]["message"]
