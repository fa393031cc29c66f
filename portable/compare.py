"""Comparing two result documents cell by cell, for CI gates.

Cells are matched on (backend, scenario, batch, seq); the documents must measure
the same model in the same scenario (a latency run's figures say nothing about a
throughput run's), and at least one cell must match. A cell regresses when its
latency moved significantly (Mann-Whitney U on the raw latencies) *and* its p50 or
throughput got worse by more than the threshold, when it ran in the base and fails
in the new run, or when its reduced-precision verdict went from pass to fail.
Every compared figure keeps its base and new value beside the change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from portable.errors import PortableError
from portable.stats import shift_p_value

Key = tuple[str, str, int, int]


class DifferentModels(PortableError):
    """The two result files measured different models: their figures are not comparable."""


class NothingToCompare(PortableError):
    """The files measured different scenarios, or no cell of one matches a cell of the other."""


@dataclass(frozen=True)
class Figure:
    """One figure of a matched cell in both files."""

    base: float | None
    new: float | None
    change: float | None
    """Relative change (new - base) / base; for an agreement (a fraction), new - base."""


FIGURES = {
    "p50_ms": ("latency", "p50"), "p99_ms": ("latency", "p99"),
    "samples_per_s": ("throughput", "samples_per_s"),
    "ttft_p50_ms": ("generate", "ttft_ms", "p50"), "tpot_p50_ms": ("generate", "tpot_ms", "p50"),
    "output_tokens_per_s": ("generate", "output_tokens_per_s"),
    "expert_agreement": ("parity", "precision", "routing", "expert_agreement"),
    "top1_agreement": ("parity", "precision", "distribution", "top1_agreement"),
    "token_match": ("generate", "token_parity", "token_match"),
}
"""Figures compared where both cells have them: name -> path in a cell."""
AGREEMENTS = ("expert_agreement", "top1_agreement", "token_match")


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
    figures: dict[str, Figure] = field(default_factory=dict)
    """Base value, new value and change of every figure both cells have (`FIGURES`)."""

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


def _value(cell: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = cell
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def figures(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Figure]:
    """Every figure of `FIGURES` that both cells carry, with its change."""
    found = {}
    for name, path in FIGURES.items():
        old, now = _value(base, path), _value(new, path)
        if old is not None and now is not None:
            change = now - old if name in AGREEMENTS else _relative(now, old)
            found[name] = Figure(old, now, change)
    return found


def _precision_passed(cell: dict[str, Any]) -> bool | None:
    verdict = (cell.get("parity") or {}).get("precision")
    return verdict["passed"] if verdict else None


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
    found = figures(base, new)
    p50, p99 = found["p50_ms"].change, found["p99_ms"].change
    throughput = found["samples_per_s"].change
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
    regression = significant and worse
    if _precision_passed(base) is True and _precision_passed(new) is False:
        verdict, regression = f"precision verdict pass -> FAIL; {verdict}", True
    return CellChange(*key, **statuses, p50_change=p50, p99_change=p99,
                      throughput_change=throughput, p_value=p_value, significant=significant,
                      regression=regression, verdict=verdict, figures=found)


def _scenarios(document: dict[str, Any]) -> set[str]:
    found = {cell["scenario"] for cell in document["results"]}
    scenario = document["settings"].get("scenario")
    return found | {scenario} if scenario else found


def _check_scenarios(base: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse files of different scenarios, or cells that match but for their scenario."""
    old, now = _scenarios(base), _scenarios(new)
    if old != now:
        raise NothingToCompare(
            f"the files measured different scenarios ({', '.join(sorted(old))} vs "
            f"{', '.join(sorted(now))}); their figures are not comparable: compare runs of "
            "one scenario")


def compare_documents(base: dict[str, Any], new: dict[str, Any], threshold: float = 0.05,
                      alpha: float = 0.01) -> list[CellChange]:
    """Per matched cell, the change from `base` to `new` and whether it is a regression."""
    if model_identity(base) != model_identity(new):
        raise DifferentModels(
            f"the files measured different models ({base['model']['name']} vs "
            f"{new['model']['name']}, or the same name with another config or file); "
            "compare runs of one model"
        )
    _check_scenarios(base, new)
    base_cells = {_key(c): c for c in base["results"]}
    new_cells = {_key(c): c for c in new["results"]}
    if not base_cells.keys() & new_cells.keys():
        raise NothingToCompare(
            "no cell of NEW matches a cell of BASE on (backend, scenario, batch, seq): "
            "nothing to compare")
    keys = list(dict.fromkeys([*base_cells, *new_cells]))
    return [_compare_cell(k, base_cells.get(k), new_cells.get(k), threshold, alpha) for k in keys]
