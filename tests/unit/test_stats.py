import numpy as np
import pytest

from portable.stats import summarize_ns


def test_summary_in_milliseconds_with_percentiles():
    samples = [i * 1_000_000 for i in range(1, 101)]  # 1..100 ms
    s = summarize_ns(samples)
    assert s["count"] == 100
    assert s["unit"] == "ms"
    assert s["min"] == 1.0 and s["max"] == 100.0
    assert s["mean"] == pytest.approx(50.5)
    assert s["p50"] == pytest.approx(50.5)
    assert s["p99"] == pytest.approx(np.percentile(np.arange(1, 101), 99))
    assert s["stdev"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s["p50"] <= s["p90"] <= s["p95"] <= s["p99"]


def test_single_and_empty_samples():
    assert summarize_ns([2_000_000])["stdev"] == 0.0
    assert summarize_ns([])["count"] == 0
