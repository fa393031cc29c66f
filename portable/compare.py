"""Comparing two result documents cell by cell, for CI gates.

Cells are matched on (backend, scenario, batch, seq); the documents must measure
the same model. A cell regresses when its latency moved significantly (Mann-Whitney
U on the raw latencies) *and* its p50 or throughput got worse by more than the
threshold, or when it ran in the base and fails in the new run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from portable.errors import PortableError
from portable.stats import shift_p_value

Key = tuple[str, str, int, int]


class DifferentModels(PortableError):
    """The two result files measured different models: their figures are not comparable."""


@dataclass(frozen=True)
class CellChange:
    backend: str
    scenario: str
    batch: int
    seq: int
    base_status: str | None
    new_status: str | None
    p50_change: float | None = None
    """Relative change of p50 latency, (new - base) / base; positive is slower."""
    p99_change: float | None = None
    throughput_change: float | None = None
    """Relative change of samples/s; negative is slower."""
    p_value: float | None = None
    significant: bool = False
    regression: bool = False
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(cell: dict[str, Any]) -> Key:
    return (cell["backend"], cell["scenario"], cell["batch"], cell["seq"])


def model_identity(document: dict[str, Any]) -> tuple[Any, ...]:
    """A reference model is its config (exports may differ by byte); a user's model its hash."""
    model = document["model"]
    return (model["name"], repr(model["config"]) if model.get("config") else model.get("sha256"))


def _relative(new: float, base: float) -> float:
    return (new - base) / base if base else 0.0


def _compare_cell(key: Key, base: dict[str, Any] | None, new: dict[str, Any] | None,
                  threshold: float, alpha: float) -> CellChange:
    statuses = {"base_status": base and base["status"], "new_status": new and new["status"]}
    if base is None or new is None:
        verdict = "only in new" if base is None else "missing from new"
        return CellChange(*key, **statuses, verdict=verdict)
    if base["status"] != "ok" or new["status"] != "ok":
        broke = base["status"] == "ok"
        verdict = f"status {base['status']} -> {new['status']}"
        return CellChange(*key, **statuses, regression=broke, verdict=verdict)
    p50 = _relative(new["latency"]["p50"], base["latency"]["p50"])
    p99 = _relative(new["latency"]["p99"], base["latency"]["p99"])
    throughput = _relative(new["throughput"]["samples_per_s"], base["throughput"]["samples_per_s"])
    p_value = shift_p_value(base["raw_latency_ns"], new["raw_latency_ns"])
    significant = p_value is not None and p_value < alpha
    worse = p50 > threshold or throughput < -threshold
    better = p50 < -threshold or throughput > threshold
    if not significant:
        verdict = "no significant change"
    elif worse:
        verdict = "REGRESSION"
    elif better:
        verdict = "improvement"
    else:
        verdict = "significant, within threshold"
    return CellChange(*key, **statuses, p50_change=p50, p99_change=p99,
                      throughput_change=throughput, p_value=p_value, significant=significant,
                      regression=significant and worse, verdict=verdict)


def compare_documents(base: dict[str, Any], new: dict[str, Any], threshold: float = 0.05,
                      alpha: float = 0.01) -> list[CellChange]:
    """Per matched cell, the change from `base` to `new` and whether it is a regression."""
    if model_identity(base) != model_identity(new):
        raise DifferentModels(
            f"the files measured different models ({base['model']['name']} vs "
            f"{new['model']['name']}, or the same name with another config or file); "
            "compare runs of one model"
        )
    base_cells = {_key(c): c for c in base["results"]}
    new_cells = {_key(c): c for c in new["results"]}
    keys = list(dict.fromkeys([*base_cells, *new_cells]))
    return [_compare_cell(k, base_cells.get(k), new_cells.get(k), threshold, alpha) for k in keys]
