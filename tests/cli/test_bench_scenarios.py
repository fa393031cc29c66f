"""Scenarios as a user runs them: the throughput batch sweep and its stop rules."""

import json

import pytest
from click.testing import CliRunner
from helpers import add_model

from portable.cli import cli


@pytest.fixture(scope="module")
def add_onnx(tmp_path_factory):
    return add_model(tmp_path_factory.mktemp("models") / "add.onnx")


def test_throughput_sweep_one_cell_per_batch_and_the_best(add_onnx, tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        "bench", "-b", "null", "-o", "delay_ms=4", "--model", str(add_onnx),
        "--scenario", "throughput", "--batch", "1,4", "--warmup", "1", "--iterations", "5",
        "--min-duration", "0", "--no-isolate", "--output", str(out),
    ])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["settings"]["scenario"] == "throughput"
    assert document["settings"]["batches"] == [1, 4]
    cells = {c["batch"]: c for c in document["results"]}
    assert set(cells) == {1, 4} and all(c["scenario"] == "throughput" for c in cells.values())
    for cell in cells.values():
        assert cell["rules"]["met"] and cell["latency"]["median_ci"]["level"] == 0.95
    # a fixed per-run delay: four samples per run is several times the throughput of one
    ratio = cells[4]["throughput"]["samples_per_s"] / cells[1]["throughput"]["samples_per_s"]
    assert ratio > 2.5
    assert "best throughput null: batch 4" in result.stderr


def test_stop_rules_not_met_are_said_per_cell(add_onnx, tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        "bench", "-b", "null", "-o", "delay_ms=5", "--model", str(add_onnx),
        "--scenario", "throughput", "--batch", "2", "--warmup", "0", "--iterations", "100000",
        "--min-duration", "0", "--max-duration", "0.1", "--no-isolate", "--output", str(out),
    ])
    assert result.exit_code == 0, result.output
    rules = json.loads(out.read_text())["results"][0]["rules"]
    assert not rules["met"] and "stopped by --max-duration" in rules["reason"]
    assert "stop rules not met" in result.stderr


@pytest.mark.parametrize("value", ["0", "1,x", "4,-1"])
def test_bad_batch_lists_are_usage_errors(value):
    result = CliRunner().invoke(cli, ["bench", "--batch", value])
    assert result.exit_code == 2 and "--batch" in result.output


def test_cross_backend_parity_compares_cells_of_the_same_batch(add_onnx, tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        "bench", "-b", "cpu", "-b", "null", "--model", str(add_onnx), "--scenario", "throughput",
        "--batch", "1,3", "--warmup", "0", "--iterations", "2", "--min-duration", "0",
        "--no-isolate", "--output", str(out),
    ])
    cells = {(c["backend"], c["batch"]): c for c in json.loads(out.read_text())["results"]}
    for batch in (1, 3):
        assert cells[("ort-cpu", batch)]["cross_parity"]["role"] == "reference"
        compared = cells[("null", batch)]["cross_parity"]
        assert compared["role"] == "compared" and compared["reference"] == "ort-cpu outputs"
        assert not compared["passed"]  # null returns zeros, ORT returns x + 1
        assert compared["outputs"]["y"]["max_abs_error"] >= 1.0
    assert result.exit_code == 1
