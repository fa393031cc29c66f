"""Latency statistics over raw samples, with numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, Any]:
    """count, mean, stdev, min, max and p50/p90/p95/p99 in milliseconds."""
    if not len(samples_ns):
        return {"count": 0, "unit": "ms"}
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    pct = np.percentile(ms, PERCENTILES)
    summary: dict[str, Any] = {
        "count": int(ms.size),
        "unit": "ms",
        "mean": float(ms.mean()),
        "stdev": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "min": float(ms.min()),
        "max": float(ms.max()),
    }
    summary.update({f"p{p}": float(v) for p, v in zip(PERCENTILES, pct, strict=True)})
    summary["cv"] = summary["stdev"] / summary["mean"] if summary["mean"] > 0 else 0.0
    median = summary["p50"]
    mad = float(np.median(np.abs(ms - median)))
    summary["robust_cv"] = 1.4826 * mad / median if median > 0 else 0.0
    return summary


NOISY_CV = 0.10
"""A run whose robust coefficient of variation exceeds this is flagged as noisy."""

_BOOTSTRAP_DRAWS = 20_000_000
"""Budget of resampled values per CI: long runs get fewer resamples, never fewer than 200."""


def median_ci(
    samples_ns: Sequence[int], level: float = 0.95, resamples: int = 1000, seed: int = 0
) -> dict[str, Any] | None:
    """Percentile-bootstrap confidence interval for the median, in milliseconds.

    Deterministic for a given seed, so one result file always carries the same interval.
    """
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size < 2:
        return None
    resamples = max(200, min(resamples, _BOOTSTRAP_DRAWS // ms.size))
    rng = np.random.default_rng(seed)
    medians = np.empty(resamples)
    chunk = max(1, _BOOTSTRAP_DRAWS // 10 // ms.size)  # bounded memory per step
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        draws = rng.integers(0, ms.size, size=(stop - start, ms.size))
        medians[start:stop] = np.median(ms[draws], axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return {"level": level, "low": float(low), "high": float(high),
            "method": "percentile bootstrap", "resamples": resamples}


def noise_warning(summary: dict[str, Any], threshold: float = NOISY_CV) -> str | None:
    """A sentence for the user when the run was noisy.

    Judged on the robust CV (1.4826 × median absolute deviation / median), so a few slow
    outliers in an otherwise steady run do not flag it; the plain CV would.
    """
    spread = summary.get("robust_cv", summary.get("cv", 0.0))
    if summary.get("count", 0) < 2 or spread <= threshold:
        return None
    return (f"noisy run: robust coefficient of variation {spread:.1%} (above {threshold:.0%}); "
            "close other work or raise --min-duration")


def load_warning(load_average: float, cores: int) -> str | None:
    """A sentence when the machine ran more work than it has cores while this was measured."""
    if load_average <= cores:
        return None
    return (f"loaded machine: load average {load_average:.1f} on {cores} cores while this "
            "ran; its figures are slower than the device can do")


def shift_p_value(base_ns: Sequence[int], new_ns: Sequence[int]) -> float | None:
    """Two-sided Mann-Whitney U p-value that two raw latency samples come from one distribution.

    Rank-based, so it makes no normality assumption about latencies (which are skewed
    and heavy-tailed). None when either side has fewer than two samples.
    """
    if len(base_ns) < 2 or len(new_ns) < 2:
        return None
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(np.asarray(base_ns), np.asarray(new_ns),
                              alternative="two-sided").pvalue)
