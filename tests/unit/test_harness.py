import itertools

from helpers import add_model

from portable.harness import BenchSettings, Cell, measure_latency, run_cell
from portable.modelsource import resolve


def test_runs_until_both_minimums_are_met():
    calls = itertools.count()
    run = measure_latency(lambda: next(calls), lambda: None,
                          BenchSettings(warmup=3, iterations=25, min_duration_s=0.0))
    assert run.rules_met and len(run.samples_ns) == 25
    assert next(calls) == 28  # warm-up runs are not timed


def test_max_duration_caps_and_says_why():
    run = measure_latency(lambda: None, lambda: None,
                          BenchSettings(warmup=0, iterations=10**9, min_duration_s=0.0,
                                        max_duration_s=0.05))
    assert not run.rules_met
    assert "stopped by --max-duration" in run.reason


def test_min_duration_extends_the_run():
    run = measure_latency(lambda: None, lambda: None,
                          BenchSettings(warmup=0, iterations=1, min_duration_s=0.05))
    assert run.rules_met and run.duration_s >= 0.05 and len(run.samples_ns) > 1


def _null_cell(tmp_path, **options):
    source = resolve(str(add_model(tmp_path / "add.onnx")))
    settings = BenchSettings(batch=2, seq=1, warmup=1, iterations=5, min_duration_s=0.0)
    return Cell("null", options, source, settings)


def test_null_backend_cell_has_every_section(tmp_path):
    result = run_cell(_null_cell(tmp_path, delay_ms="1"))
    assert result["status"] == "ok"
    assert result["latency"]["count"] >= 5 and result["latency"]["p50"] >= 1.0
    assert result["throughput"]["samples_per_s"] > 0
    assert len(result["raw_latency_ns"]) == result["latency"]["count"]
    assert result["parity"] is None
    assert result["memory"]["peak_rss_bytes"] > 0
    assert result["rules"]["met"]


def test_backend_failures_become_statuses(tmp_path):
    on_load = run_cell(_null_cell(tmp_path, fail="load"))
    assert on_load["status"] == "error" and "fail on load" in on_load["error"]["message"]
    on_run = run_cell(_null_cell(tmp_path, fail="run"))
    assert on_run["status"] == "error" and "traceback" in on_run["error"]
