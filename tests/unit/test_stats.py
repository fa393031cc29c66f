import numpy as np
import pytest

from portable.stats import load_warning, noise_warning, summarize_ns


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


def test_median_ci_brackets_the_median_and_narrows_with_more_samples():
    from portable.stats import median_ci

    rng = np.random.default_rng(1)
    small = (rng.normal(10.0, 1.0, 50) * 1e6).astype(np.int64)
    large = (rng.normal(10.0, 1.0, 5000) * 1e6).astype(np.int64)
    ci_small, ci_large = median_ci(small), median_ci(large)
    assert ci_small["low"] <= np.median(small) / 1e6 <= ci_small["high"]
    assert ci_large["low"] < 10.0 < ci_large["high"]
    assert ci_large["high"] - ci_large["low"] < (ci_small["high"] - ci_small["low"]) / 3
    assert median_ci(small) == ci_small  # seeded: one file, one interval
    assert median_ci([5]) is None


def test_median_ci_stays_cheap_on_very_long_runs():
    from portable.stats import median_ci

    ci = median_ci(np.full(400_000, 2_000_000))
    assert ci["resamples"] >= 200 and ci["low"] == ci["high"] == 2.0


def test_noise_warning_names_the_robust_cv():
    steady = summarize_ns([10_000_000, 10_100_000, 9_900_000])
    noisy = summarize_ns([10_000_000, 30_000_000, 5_000_000])
    assert noise_warning(steady) is None
    warning = noise_warning(noisy)
    assert "noisy run" in warning and f"{noisy['robust_cv']:.1%}" in warning


def test_a_steady_run_with_a_few_outliers_is_not_called_noisy():
    """The plain CV flags a clean run (p50 1.087, p99 1.271: CV ~13%); the robust one does not."""
    steady = [1_087_000 + (i % 7) * 3_000 for i in range(200)]
    outliers = steady[:-6] + [2_600_000] * 6
    summary = summarize_ns(outliers)
    assert summary["cv"] > 0.10 and summary["robust_cv"] < 0.05
    assert noise_warning(summary) is None
    noisy = summarize_ns([1_000_000 * (1 + (i % 5) * 0.2) for i in range(200)])
    assert "robust coefficient of variation" in noise_warning(noisy)


def test_a_loaded_machine_is_flagged():
    assert load_warning(1.5, 2) is None
    assert "load average 8.0 on 2 cores" in load_warning(8.0, 2)
