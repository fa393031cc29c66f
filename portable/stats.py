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
    return summary
