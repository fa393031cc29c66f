"""Comparing outputs with a reference at a tolerance that follows the dtype."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Absolute tolerance (and relative, for large values) per output dtype.
TOLERANCE: Mapping[str, float] = {
    "float64": 1e-6,
    "float32": 1e-4,
    "float16": 1e-2,
    "bfloat16": 5e-2,
}


@dataclass(frozen=True)
class OutputParity:
    name: str
    dtype: str
    max_abs: float
    max_rel: float
    tolerance: float
    mismatched: int
    """Elements outside tolerance (for integer/bool outputs: elements that differ)."""
    nonfinite: int
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "tolerance": self.tolerance,
            "mismatched": self.mismatched,
            "nonfinite": self.nonfinite,
            "passed": self.passed,
            "note": self.note,
        }


def compare_output(
    name: str, actual: np.ndarray, expected: np.ndarray, tolerance: float | None = None
) -> OutputParity:
    dtype = str(expected.dtype)
    if actual.shape != expected.shape:
        return OutputParity(name, dtype, float("inf"), float("inf"), 0.0, expected.size, 0, False,
                            f"shape {actual.shape} != expected {expected.shape}")
    if expected.dtype.kind in "iub" or expected.dtype.kind in "OUS":
        differ = int(np.count_nonzero(actual != expected))
        return OutputParity(name, dtype, float(differ > 0), float(differ > 0), 0.0, differ, 0,
                            differ == 0, "exact match required")
    tol = tolerance if tolerance is not None else TOLERANCE.get(dtype, 1e-4)
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    nonfinite = int(np.count_nonzero(~np.isfinite(a)))
    same_nonfinite = np.isnan(a) & np.isnan(e) | (np.isinf(a) & (a == e))
    with np.errstate(invalid="ignore"):  # inf - inf is handled by same_nonfinite
        diff = np.where(same_nonfinite, 0.0, np.abs(a - e))
    diff = np.nan_to_num(diff, nan=np.inf)
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = diff / np.maximum(np.abs(e), 1e-12)
    max_rel = float(np.where(np.abs(e) > tol, rel, 0).max()) if diff.size else 0.0
    bad = diff > tol * np.maximum(1.0, np.abs(np.nan_to_num(e)))
    mismatched = int(np.count_nonzero(bad))
    return OutputParity(name, dtype, max_abs, max_rel, tol, mismatched, nonfinite, mismatched == 0)


@dataclass(frozen=True)
class ParityReport:
    reference: str
    outputs: tuple[OutputParity, ...]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs(self) -> float:
        floats = [o.max_abs for o in self.outputs if o.dtype.startswith(("float", "bfloat"))]
        return max(floats, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "passed": self.passed,
            "max_abs_error": self.max_abs,
            "outputs": {o.name: o.to_dict() for o in self.outputs},
        }


def compare(
    actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], reference: str
) -> ParityReport:
    results = []
    for name, exp in expected.items():
        if name not in actual:
            results.append(OutputParity(name, str(exp.dtype), float("inf"), float("inf"), 0.0,
                                        exp.size, 0, False, "output missing"))
        else:
            results.append(compare_output(name, np.asarray(actual[name]), exp))
    return ParityReport(reference, tuple(results))
