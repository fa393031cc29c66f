"""Parity across backends: every backend runs the same inputs; the first one is the reference.

A user's model has no golden outputs, so the only honest reference is another
stack. Work items asked to keep their outputs hand the arrays back in
`CellResult.outputs`; `cross_check` compares them at the per-dtype tolerance of
`portable.parity`, writes the report into each result as ``cross_parity`` and
drops the arrays, so the result file stays plain JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from portable.parity import coarser, compare
from portable.precision import compare_models, effective_precision
from portable.records import CellResult


def cell_label(cell: Mapping[str, Any] | CellResult) -> str:
    """The backend's name, with its options when it has any (the same backend may run twice)."""
    backend, options = ((cell.backend, cell.options) if isinstance(cell, CellResult)
                        else (cell["backend"], cell.get("options") or {}))
    if not options:
        return str(backend)
    return f"{backend}({','.join(f'{k}={v}' for k, v in sorted(options.items()))})"


def _nonfinite(outputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    counts = {}
    for name, array in outputs.items():
        array = np.asarray(array)
        if array.dtype.kind in "fc" or str(array.dtype) == "bfloat16":
            counts[name] = int(np.count_nonzero(~np.isfinite(array.astype(np.float64))))
    return counts


def cross_check(results: Sequence[CellResult], model_precision: str = "fp32") -> None:
    """Compare each result that ran with the first that ran; set ``cross_parity``; drop arrays.

    The reference's report says it is the reference and counts its NaN/Inf. A
    compared result fails when any output is outside tolerance or missing, or when
    its inputs (by digest) differ from the reference's. Below fp32 (a quantized model,
    a device computing in fp16/bf16) the routing-aware rules of `portable.precision`
    decide. With fewer than two results
    that ran, nothing is compared and no result gets ``cross_parity``.
    """
    ran = [(r, r.outputs) for r in results if r.outputs is not None]
    for result in results:
        result.outputs = None
    if len(ran) < 2:
        return
    (ref, ref_out), rest = ran[0], ran[1:]
    reference = cell_label(ref)
    ref.cross_parity = {
        "reference": reference,
        "role": "reference",
        "passed": True,
        "nonfinite": _nonfinite(ref_out),
    }
    for result, out in rest:
        # Both sides' compute precision (bf16, fp16, ...) loosens the tolerance.
        precision = coarser(result.compute_precision, ref.compute_precision)
        report = compare(out, ref_out, f"{reference} outputs", precision).to_dict()
        report["role"] = "compared"
        reduced = effective_precision(model_precision, precision)
        if reduced != "fp32":
            verdict = compare_models(out, ref_out, reduced)
            report.update(precision=verdict, passed=verdict["passed"])
        ref_inputs = ref.inputs or {}
        differ = [n for n in ref_inputs if (result.inputs or {}).get(n) != ref_inputs[n]]
        if differ:
            report["passed"] = False
            report["note"] = f"inputs differ from the reference's: {', '.join(differ)}"
        result.cross_parity = report
