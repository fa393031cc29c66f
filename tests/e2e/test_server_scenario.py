"""`--scenario server` through MLPerf LoadGen, in the isolated child, on the null backend."""

import json

import pytest
from click.testing import CliRunner
from helpers import add_model

from portable.cli import cli


@pytest.fixture(scope="module")
def add_onnx(tmp_path_factory):
    return add_model(tmp_path_factory.mktemp("models") / "add.onnx")


def _server(add_onnx, tmp_path, *args):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        "bench", "-b", "null", "--model", str(add_onnx), "--scenario", "server",
        "--warmup", "2", "--iterations", "20", "--output", str(out), *args,
    ])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["results"][0], result


def test_poisson_arrivals_at_the_rate_with_loadgen_verdict(add_onnx, tmp_path):
    cell, result = _server(add_onnx, tmp_path, "-o", "delay_ms=2", "--rate", "100",
                           "--p99-bound-ms", "0.5", "--min-duration", "0.5")
    server = cell["server"]
    assert server["loadgen_version"] and server["rate"] == 100.0
    assert 40 <= server["achieved_rate"] <= 200
    assert cell["throughput"]["samples_per_s"] == pytest.approx(server["achieved_rate"])
    # every request takes 2 ms, so p99 cannot be under 0.5 ms: LoadGen says INVALID, and why
    assert server["verdict"] == "INVALID" and not cell["rules"]["met"]
    assert "p99 latency above --p99-bound-ms" in cell["rules"]["reason"]
    assert cell["latency"]["p50"] >= 2.0 and cell["latency"]["count"] >= 20
    assert "server null batch 1: INVALID at 100 req/s" in result.stderr


@pytest.mark.slow
def test_find_peak_reports_the_highest_rate_under_the_bound(add_onnx, tmp_path):
    cell, result = _server(add_onnx, tmp_path, "-o", "delay_ms=5", "--find-peak",
                           "--p99-bound-ms", "40", "--min-duration", "0.3")
    server = cell["server"]
    assert len(server["trials"]) == 6 and server["search_ceiling"] <= 200
    assert server["peak_rate"] == max(t["rate"] for t in server["trials"] if t["under_bound"])
    assert server["rate"] == server["peak_rate"] and server["p99_ms"] <= 40
    assert "peak" in result.stderr
