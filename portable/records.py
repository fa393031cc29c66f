"""Typed results: what a work item produced, and the one place statuses become exit codes.

A `CellResult` is built by the harness (or by a launcher, for an item that crashed or
timed out) and serialised by `to_dict()` into exactly the cell documented in
docs/results.md and `portable/schemas/result-v1.schema.json`. Arrays kept for the
cross-backend check live in `outputs`, which is never serialised.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from portable import errors
from portable.adapter import DeviceInfo, Placement
from portable.parity import ParityReport
from portable.sessions import Compilation


class Status(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"
    """The backend's runtime or device is missing here."""
    UNSUPPORTED = "unsupported"
    """The backend runs, but not this model (an op or a dtype it lacks)."""
    INVALID = "invalid"
    """The model or its inputs are not runnable as asked (a bad model, wrong shapes)."""
    REFUSED = "refused"
    """Strict placement refused a run in which nodes left the asked-for device."""
    ERROR = "error"
    """The backend raised while running."""
    CRASHED = "crashed"
    TIMEOUT = "timeout"


#: The exit code of a run whose worst cell has this status (checked in this order).
_EXIT_BY_STATUS: tuple[tuple[frozenset[Status], int], ...] = (
    (frozenset({Status.CRASHED, Status.TIMEOUT, Status.ERROR}), errors.EXIT_CRASHED),
    (frozenset({Status.UNAVAILABLE, Status.UNSUPPORTED}), errors.EXIT_UNAVAILABLE),
    (frozenset({Status.INVALID}), errors.EXIT_USAGE),
    (frozenset({Status.REFUSED}), errors.EXIT_CHECK_FAILED),
)


def exit_code(results: Iterable[CellResult], interrupted: bool = False) -> int:
    """The exit code of a run: interrupted, then crashes, unavailability, bad input, checks.

    The README's exit-code table is this function; every command that runs cells uses it.
    """
    if interrupted:
        return errors.EXIT_INTERRUPTED
    results = list(results)
    statuses = {r.status for r in results}
    for group, code in _EXIT_BY_STATUS:
        if statuses & group:
            return code
    if any(r.check_failed for r in results):
        return errors.EXIT_CHECK_FAILED
    return errors.EXIT_OK


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    hint: str = ""
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {"type": self.type, "message": self.message, "hint": self.hint}
        if self.traceback:
            record["traceback"] = self.traceback
        return record


@dataclass(frozen=True)
class Throughput:
    samples_per_s: float
    """Batch size over the mean latency (or, under arrivals, over the completed rate)."""
    tokens_per_s: float | None
    """Samples/s × seq; None when the model has no sequence dimension."""

    def to_dict(self) -> dict[str, Any]:
        return {"samples_per_s": self.samples_per_s, "tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class Rules:
    """The stop rules a scenario ran under, and whether the run met them."""

    met: bool
    reason: str
    warmup: int
    min_iterations: int
    min_duration_s: float
    max_duration_s: float
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Memory:
    peak_rss_bytes: int | None = None
    device: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"device": self.device}
        if self.peak_rss_bytes is not None:
            record["peak_rss_bytes"] = self.peak_rss_bytes
        return record


@dataclass
class CellResult:
    """One work item's result: identity, status and every figure measured."""

    backend: str
    options: dict[str, str]
    scenario: str
    batch: int
    seq: int | None
    """Read from the inputs that ran; None when the model has no sequence dimension."""
    status: Status = Status.ERROR
    error: ErrorInfo | None = None
    device: DeviceInfo | None = None
    session_create_ms: float | None = None
    first_inference_ms: float | None = None
    placement_ms: float | None = None
    """Reading where nodes ran (a profile, a log): bookkeeping, kept out of the phases above."""
    compilations: list[Compilation] = field(default_factory=list)
    """Each shape set a static-shape session was specialized for (the work item's first)."""
    inputs: dict[str, dict[str, Any]] | None = None
    placement: Placement | None = None
    compute_precision: str | None = None
    latency: dict[str, Any] | None = None
    """`portable.stats.summarize_ns` figures in ms, with ``median_ci``."""
    raw_latency_ns: list[int] | None = None
    throughput: Throughput | None = None
    rules: Rules | None = None
    parity: ParityReport | None = None
    precision_parity: dict[str, Any] | None = None
    """Below fp32: the routing-aware verdict (`portable.precision.judge`), which then decides
    the parity check instead of the plain per-dtype tolerance; under ``parity.precision``."""
    cross_parity: dict[str, Any] | None = None
    memory: Memory = field(default_factory=Memory)
    energy: dict[str, Any] | None = None
    conditions: dict[str, Any] | None = None
    """``threads`` the runtime used, the machine's ``load_average_1m`` and ``usable_cores``."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Scenario- and model-specific sections (``server``, ``moe``, ``roofline``, ``cost``),
    serialised under their own keys."""
    warnings: list[str] = field(default_factory=list)
    node: dict[str, Any] | None = None
    """Where a cluster launcher ran the item: ``{"node_id": ..., "environment": {...}}``
    (`portable.environment.capture` on that node); None for a local run."""
    outputs: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    """The first run's outputs, for the cross-backend check; never serialised."""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def check_failed(self) -> bool:
        """Whether golden or cross-backend parity ran and failed."""
        cross_failed = bool(self.cross_parity) and not self.cross_parity["passed"]
        tokens = (self.extras.get("generate") or {}).get("token_parity") or {}
        golden_failed = (not self.precision_parity["passed"] if self.precision_parity
                         else bool(self.parity and not self.parity.passed))
        return golden_failed or cross_failed or tokens.get("passed") is False

    def fail(self, status: Status, error: ErrorInfo) -> CellResult:
        self.status, self.error = status, error
        return self

    def _compile_fields(self) -> dict[str, Any]:
        """``compile_ms`` and ``artifact_cache`` of the work item's shapes, and every shape set's
        compilation; a session that compiled nothing ahead says ``artifact_cache: none``."""
        if self.compilations:
            first = self.compilations[0]
            return {"compile_ms": first.compile_ms, "artifact_cache": first.artifact_cache,
                    "compile": [c.to_dict() for c in self.compilations]}
        return {"artifact_cache": "none"} if self.session_create_ms is not None else {}

    def to_dict(self) -> dict[str, Any]:
        """The cell as documented in docs/results.md (absent figures are left out)."""
        cell: dict[str, Any] = {
            "backend": self.backend,
            "options": dict(self.options),
            "scenario": self.scenario,
            "batch": self.batch,
            "seq": self.seq,
            "status": str(self.status),
            "error": self.error.to_dict() if self.error else None,
            "device": self.device.to_dict() if self.device else None,
        }
        optional = {
            "session_create_ms": self.session_create_ms,
            "first_inference_ms": self.first_inference_ms,
            "placement_ms": self.placement_ms,
            "inputs": self.inputs,
            "placement": self.placement.to_dict() if self.placement else None,
            "latency": self.latency,
            "throughput": self.throughput.to_dict() if self.throughput else None,
            "rules": self.rules.to_dict() if self.rules else None,
            "raw_latency_ns": self.raw_latency_ns,
            "cross_parity": self.cross_parity,
            "energy": self.energy,
            "conditions": self.conditions,
            "node": self.node,
        }
        cell.update({key: value for key, value in optional.items() if value is not None})
        cell.update(self._compile_fields())
        if self.placement is not None:
            cell["compute_precision"] = self.compute_precision
        if self.ok or self.parity is not None:
            cell["parity"] = self.parity.to_dict() if self.parity else None
            if self.parity and self.precision_parity:
                cell["parity"]["precision"] = self.precision_parity
        if self.ok or self.warnings:
            cell["warnings"] = list(self.warnings)
        cell["memory"] = self.memory.to_dict()
        cell.update(self.extras)
        return cell
