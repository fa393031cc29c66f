"""The server scenario's pieces that need no LoadGen run: its log and the peak search."""

import json

import pytest

from portable.server import find_peak, invalid_reasons, parse_detail_log, under_bound


def _mllog(key, value):
    return ":::MLLOG " + json.dumps({"key": key, "value": value, "time_ms": 1.0})


def test_detail_log_verdict_and_reasons():
    text = "\n".join([
        _mllog("result_validity", "INVALID"), _mllog("result_min_duration_met", True),
        _mllog("result_min_queries_met", True), _mllog("result_perf_constraints_met", False),
        _mllog("early_stopping_met", False), _mllog("result_99.00_percentile_latency_ns", 9e6),
        _mllog("effective_target_qps", 5), "not a log line",
    ])
    verdict = parse_detail_log(text)
    assert verdict["verdict"] == "INVALID" and verdict["p99_ns"] == 9e6
    assert "effective_target_qps" not in verdict
    reasons = invalid_reasons(verdict)
    assert [r.split(":")[0] for r in reasons] == [
        "p99 latency above --p99-bound-ms",
        "too few queries for MLPerf's early-stopping p99 estimate",
    ]
    assert "lower --rate" in reasons[0] and "raise --min-duration" in reasons[1]  # what to do
    assert not under_bound(verdict)


def test_only_a_valid_trial_counts_for_the_peak():
    """Latency under the bound is not enough: too few queries for p99 is no evidence."""
    short = {"verdict": "INVALID", "latency_bound_met": True, "min_duration_met": True,
             "min_queries_met": True, "early_stopping_met": False}
    assert not under_bound(short) and under_bound({**short, "verdict": "VALID"})


def test_detail_log_with_nan_figures_parses_them_as_none():
    text = "\n".join([
        _mllog("result_validity", "INVALID"),
        ':::MLLOG {"key": "result_completed_samples_per_sec", "value": -nan, "time_ms": 1.0}',
        ':::MLLOG {"key": "result_99.00_percentile_latency_ns", "value": nan, "time_ms": 1.0}',
        ':::MLLOG {"key": "result_query_count", "value": {broken',
    ])
    verdict = parse_detail_log(text)
    assert verdict == {"verdict": "INVALID", "completed_per_s": None, "p99_ns": None}


def test_peak_search_converges_on_the_highest_rate_under_the_bound():
    def trial(rate):
        ok = rate <= 37.0
        return [1], {"verdict": "VALID" if ok else "INVALID", "latency_bound_met": ok,
                     "min_duration_met": True, "min_queries_met": True, "p99_ns": 1e6}

    peak, trials, (_, verdict) = find_peak(trial, ceiling=100.0, steps=8)
    assert 37.0 - 100 / 2**8 <= peak <= 37.0
    assert len(trials) == 8 and verdict["verdict"] == "VALID"
    assert peak == max(t["rate"] for t in trials if t["under_bound"])


def test_peak_search_says_when_no_rate_keeps_under_the_bound():
    def trial(rate):
        return [1], {"verdict": "INVALID", "latency_bound_met": False}

    peak, trials, _ = find_peak(trial, ceiling=10.0, steps=3)
    assert peak is None and [t["rate"] for t in trials] == pytest.approx([5.0, 2.5, 1.25])
