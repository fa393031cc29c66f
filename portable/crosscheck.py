"""Parity across backends: every backend runs the same inputs; the first one is the reference.

A user's model has no golden outputs, so the only honest reference is another
stack. Cells asked to keep their outputs hand the arrays back from the child
process under `OUTPUTS_KEY`; `cross_check` compares them at the per-dtype
tolerance of `portable.parity`, writes the report into each cell as
``cross_parity`` and drops the arrays, so the result file stays plain JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from portable.parity import compare

OUTPUTS_KEY = "outputs"
"""Key of the in-memory output arrays in a cell; never written to a result file."""


def cell_label(cell: Mapping[str, Any]) -> str:
    """The backend's name, with its options when it has any (the same backend may run twice)."""
    options = cell.get("options") or {}
    if not options:
        return str(cell["backend"])
    return f"{cell['backend']}({','.join(f'{k}={v}' for k, v in sorted(options.items()))})"


def _nonfinite(outputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    counts = {}
    for name, array in outputs.items():
        array = np.asarray(array)
        if array.dtype.kind in "fc" or str(array.dtype) == "bfloat16":
            counts[name] = int(np.count_nonzero(~np.isfinite(array.astype(np.float64))))
    return counts


def cross_check(cells: Sequence[dict[str, Any]]) -> None:
    """Compare each cell that ran with the first that ran; set ``cross_parity``; drop arrays.

    The reference cell's report says it is the reference and counts its NaN/Inf.
    A compared cell fails when any output is outside tolerance or missing, or when
    its inputs (by digest) differ from the reference's. With fewer than two cells
    that ran, nothing is compared and no cell gets ``cross_parity``.
    """
    outputs = [cell.pop(OUTPUTS_KEY, None) for cell in cells]
    ran = [(cell, out) for cell, out in zip(cells, outputs, strict=True) if out is not None]
    if len(ran) < 2:
        return
    (ref_cell, ref_out), rest = ran[0], ran[1:]
    reference = cell_label(ref_cell)
    ref_cell["cross_parity"] = {
        "reference": reference,
        "role": "reference",
        "passed": True,
        "nonfinite": _nonfinite(ref_out),
    }
    for cell, out in rest:
        report = compare(out, ref_out, f"{reference} outputs").to_dict()
        report["role"] = "compared"
        ref_inputs = ref_cell.get("inputs", {})
        differ = [n for n in ref_inputs if (cell.get("inputs") or {}).get(n) != ref_inputs[n]]
        if differ:
            report["passed"] = False
            report["note"] = f"inputs differ from the reference's: {', '.join(differ)}"
        cell["cross_parity"] = report


def failed(cell: Mapping[str, Any]) -> bool:
    """Whether the cell's cross-backend parity check ran and failed."""
    report = cell.get("cross_parity")
    return bool(report) and not report["passed"]
