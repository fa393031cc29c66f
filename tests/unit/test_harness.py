import itertools

import numpy as np
from helpers import add_model

from portable.harness import WorkItem, run_work_item
from portable.modelsource import resolve
from portable.timing import BenchSettings, measure_latency


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
    return WorkItem("null", options, source, settings)


def test_null_backend_cell_has_every_section(tmp_path):
    result = run_work_item(_null_cell(tmp_path, delay_ms="1")).to_dict()
    assert result["status"] == "ok"
    assert result["latency"]["count"] >= 5 and result["latency"]["p50"] >= 1.0
    assert result["throughput"]["samples_per_s"] > 0
    assert len(result["raw_latency_ns"]) == result["latency"]["count"]
    assert result["parity"] is None
    assert result["memory"]["peak_rss_bytes"] > 0
    assert result["rules"]["met"]


def test_backend_failures_become_statuses(tmp_path):
    on_load = run_work_item(_null_cell(tmp_path, fail="load")).to_dict()
    assert on_load["status"] == "invalid" and "fail on load" in on_load["error"]["message"]
    on_run = run_work_item(_null_cell(tmp_path, fail="run")).to_dict()
    assert on_run["status"] == "error" and "traceback" in on_run["error"]


def test_phase_times_exclude_bookkeeping(tmp_path):
    """Reading placement (a profile) and probing are not part of load or first inference."""
    result = run_work_item(_null_cell(tmp_path, placement_delay_ms="300", probe_delay_ms="300"))
    assert result.ok, result.error
    assert result.placement_ms >= 300
    assert result.session_create_ms < 150 and result.first_inference_ms < 150


def test_ort_load_reuses_the_probe(tiny_export, monkeypatch):
    from portable.backends.ort_cpu import OrtCpuAdapter
    from portable.timing import BenchSettings as Settings

    calls = []
    real = OrtCpuAdapter._probe
    monkeypatch.setattr(OrtCpuAdapter, "_probe", lambda self: calls.append(1) or real(self))
    monkeypatch.setattr("portable.registry.create", lambda name, options: OrtCpuAdapter(options))
    result = run_work_item(WorkItem("ort-cpu", {}, resolve("moe-tiny"),
                                    Settings(warmup=0, iterations=1, min_duration_s=0.0)))
    assert result.ok and calls == [1]  # probed once, by the harness, before load is timed


def test_ort_first_inference_does_not_read_the_profile(tiny_export):
    """The profile is read in the placement phase: the first run stays a run."""
    from portable.adapter import SessionConfig
    from portable.backends.ort_cpu import OrtCpuAdapter

    session = OrtCpuAdapter().load(tiny_export.onnx_path, SessionConfig())
    feeds = {"input_ids": np.zeros((1, 8), np.int64)}
    session.run(feeds)
    assert session._placement is None  # not read inside run()
    assert session.placement().source == "profiler"
    session.close()


def test_extras_after_timing_become_warnings(tmp_path, monkeypatch):
    from portable import reference

    def broken(config, outputs):
        raise KeyError("vocab_size")

    monkeypatch.setattr(reference, "figures", broken)
    result = run_work_item(_null_cell(tmp_path))
    assert result.ok and result.latency["count"] >= 5
    assert any("no model figures" in w for w in result.warnings)


def test_a_pickled_golden_file_is_refused_before_timing_and_the_run_goes_on(tmp_path):
    model = add_model(tmp_path / "add.onnx")
    with open(tmp_path / "add.golden.npz", "wb") as fh:  # an object array: needs pickle
        np.save(fh, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    settings = BenchSettings(batch=2, seq=1, warmup=0, iterations=2, min_duration_s=0.0)
    result = run_work_item(WorkItem("null", {}, resolve(str(model)), settings))
    assert result.ok and result.parity is None
    assert any("no golden parity" in w for w in result.warnings)
