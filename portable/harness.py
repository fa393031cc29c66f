"""The benchmark harness: one backend, one model, one scenario -> one result cell.

It knows nothing about any backend: it drives the `Adapter`/`Session` contract,
times ``step(); synchronize()`` with `perf_counter_ns`, checks parity against the
golden outputs and reads placement and memory from the session. Failures of the
backend become the cell's status, never an exception out of `run_cell`.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from portable import registry
from portable.adapter import SessionConfig
from portable.crosscheck import OUTPUTS_KEY
from portable.energy import EnergyMeter
from portable.errors import (
    BackendUnavailable,
    InputError,
    PlacementError,
    PortableError,
    UnsupportedModel,
)
from portable.inputs import InputSpec, describe_feeds, feed_specs, make_feeds
from portable.modelsource import ModelSource
from portable.parity import compare
from portable.privacy import redact
from portable.signature import read_signature
from portable.stats import median_ci, noise_warning, summarize_ns

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_UNAVAILABLE = "unavailable"
STATUS_UNSUPPORTED = "unsupported"
STATUS_ERROR = "error"
STATUS_CRASHED = "crashed"
STATUS_TIMEOUT = "timeout"


@dataclass(frozen=True)
class BenchSettings:
    batch: int = 1
    seq: int = 128
    warmup: int = 5
    iterations: int = 50
    """Minimum number of timed runs."""
    min_duration_s: float = 2.0
    """Minimum timed duration; the run goes on until both minimums are met."""
    max_duration_s: float = 60.0
    """Cap on the timed duration; a run stopped by it has not met its rules."""
    threads: int | None = None
    strict: bool = False
    seed: int = 0
    rate: float = 10.0
    """Server scenario: target arrival rate, requests/s (Poisson)."""
    p99_bound_ms: float = 100.0
    """Server scenario: the latency bound at the 99th percentile, queueing included."""
    find_peak: bool = False
    """Server scenario: search for the highest rate that keeps p99 under the bound."""
    peak_steps: int = 6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    """One unit of work: what the child process needs to produce one result."""

    backend: str
    options: Mapping[str, str]
    model: ModelSource
    settings: BenchSettings
    scenario: str = "latency"
    inputs: InputSpec = field(default_factory=InputSpec)
    """The user's shapes, dims and data for the model's inputs (the rest is generated)."""
    keep_outputs: bool = False
    """Hand the first run's outputs back (under OUTPUTS_KEY) for a cross-backend check."""


@dataclass
class LatencyRun:
    samples_ns: list[int] = field(default_factory=list)
    duration_s: float = 0.0
    rules_met: bool = False
    reason: str = ""
    rate_per_s: float | None = None
    """Completed requests/s when arrivals, not the device, set the pace (server scenario)."""


def measure_latency(
    step: Callable[[], object], synchronize: Callable[[], None], settings: BenchSettings
) -> LatencyRun:
    """Warm up, then time ``step(); synchronize()`` until the count and duration minimums."""
    for _ in range(settings.warmup):
        step()
        synchronize()
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    min_ns = int(settings.min_duration_s * 1e9)
    max_ns = int(settings.max_duration_s * 1e9)
    started = clock()
    while True:
        t0 = clock()
        step()
        synchronize()
        t1 = clock()
        append(t1 - t0)
        elapsed = t1 - started
        if len(samples) >= settings.iterations and elapsed >= min_ns:
            return LatencyRun(samples, elapsed / 1e9, True)
        if elapsed >= max_ns:
            return LatencyRun(
                samples,
                elapsed / 1e9,
                False,
                f"stopped by --max-duration {settings.max_duration_s:g}s after "
                f"{len(samples)} of {settings.iterations} runs",
            )


def peak_rss_bytes() -> int:
    """Peak resident memory of this process image.

    Linux's VmHWM belongs to the current address space, so a spawned child reports
    its own peak; ru_maxrss would include the parent's RSS at fork time.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def moe_figures(config: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Total and active parameters and, from the run's routing output, the expert load."""
    from portable.models.config import MoEConfig, active_params_per_token, total_params

    cfg = MoEConfig.from_dict(dict(config))
    figures: dict[str, Any] = {
        "total_params": total_params(cfg),
        "active_params_per_token": active_params_per_token(cfg),
    }
    expert_ids = outputs.get("expert_ids")
    if expert_ids is not None and expert_ids.size:
        per_layer = expert_ids.reshape(expert_ids.shape[0], -1)
        figures["expert_load"] = [
            np.bincount(layer, minlength=cfg.num_experts).tolist() for layer in per_layer
        ]
    return figures


def base_cell(cell: Cell) -> dict[str, Any]:
    return {
        "backend": cell.backend,
        "options": dict(cell.options),
        "scenario": cell.scenario,
        "batch": cell.settings.batch,
        "seq": cell.settings.seq,
        "status": STATUS_ERROR,
        "error": None,
        "device": None,
    }


def error_record(exc: BaseException, with_traceback: bool = False) -> dict[str, Any]:
    record = {
        "type": type(exc).__name__,
        "message": str(exc),
        "hint": getattr(exc, "hint", ""),
    }
    if with_traceback:
        record["traceback"] = redact("".join(traceback.format_exception(exc)))
    return record


def run_cell(cell: Cell) -> dict[str, Any]:
    """Run one cell in this process; every backend failure is recorded in the returned dict."""
    result = base_cell(cell)
    try:
        adapter = registry.create(cell.backend, cell.options)
        result["backend"] = adapter.name
        result["device"] = adapter.probe().to_dict()
        _measure(adapter, cell, result)
        result["status"] = STATUS_OK
    except BackendUnavailable as exc:
        result.update(status=STATUS_UNAVAILABLE, error=error_record(exc))
    except UnsupportedModel as exc:
        result.update(status=STATUS_UNSUPPORTED, error=error_record(exc))
    except (PlacementError, InputError, PortableError) as exc:
        result.update(status=STATUS_ERROR, error=error_record(exc))
    except Exception as exc:  # a backend that raises must not end the matrix
        log.debug("backend %s raised", cell.backend, exc_info=True)
        result.update(status=STATUS_ERROR, error=error_record(exc, with_traceback=True))
    result["memory"] = {**result.get("memory", {}), "peak_rss_bytes": peak_rss_bytes()}
    return result


def _measure(adapter: Any, cell: Cell, result: dict[str, Any]) -> None:
    settings = cell.settings
    strict = settings.strict or adapter.default_strict
    config = SessionConfig(threads=settings.threads, strict=strict)

    t0 = time.perf_counter_ns()
    session = adapter.load(cell.model.path, config)
    result["session_create_ms"] = (time.perf_counter_ns() - t0) / 1e6
    try:
        # From the ONNX file, not the session: some runtimes drop symbolic dim names,
        # and every backend must get the same arrays.
        signature = read_signature(cell.model.path)
        feeds = make_feeds(
            feed_specs(signature, cell.inputs), settings.batch, settings.seq, settings.seed,
            cell.model.reference_config, cell.inputs, signature.index_bounds,
        )
        result["inputs"] = describe_feeds(feeds)
        t0 = time.perf_counter_ns()
        first_outputs = session.run(feeds)
        session.synchronize()
        result["first_inference_ms"] = (time.perf_counter_ns() - t0) / 1e6
        if cell.keep_outputs:
            result[OUTPUTS_KEY] = first_outputs

        placement = session.placement()
        result["placement"] = placement.to_dict()
        result["compute_precision"] = session.compute_precision
        if placement.has_fallback and strict:
            raise PlacementError(
                f"{adapter.name}: nodes ran off {placement.requested}: "
                f"{dict(placement.nodes_by_device)} ({', '.join(placement.fallback_op_types)})"
            )

        meter = EnergyMeter.start()
        if cell.scenario == "server":
            from portable.server import measure_server

            run, result["server"] = measure_server(
                session.prepare(feeds), session.synchronize, settings)
        else:
            run = measure_latency(session.prepare(feeds), session.synchronize, settings)
        runs = settings.warmup + len(run.samples_ns)
        result["energy"] = meter.stop(tokens=runs * settings.batch * settings.seq)
        latency = summarize_ns(run.samples_ns)
        latency["median_ci"] = median_ci(run.samples_ns, seed=settings.seed)
        result["warnings"] = [w for w in (noise_warning(latency),) if w]
        samples_per_s = settings.batch * 1000.0 / latency["mean"] if latency["count"] else 0.0
        if run.rate_per_s is not None:
            samples_per_s = settings.batch * run.rate_per_s
        result["latency"] = latency
        result["throughput"] = {
            "samples_per_s": samples_per_s,
            "tokens_per_s": samples_per_s * settings.seq,
        }
        result["rules"] = {
            "met": run.rules_met,
            "reason": run.reason,
            "warmup": settings.warmup,
            "min_iterations": settings.iterations,
            "min_duration_s": settings.min_duration_s,
            "max_duration_s": settings.max_duration_s,
            "duration_s": run.duration_s,
        }
        result["raw_latency_ns"] = run.samples_ns

        golden = cell.model.golden()
        if golden is not None:
            golden_inputs, golden_outputs = golden
            result["parity"] = compare(
                session.run(golden_inputs), golden_outputs, "golden outputs from PyTorch eager",
                session.compute_precision,
            ).to_dict()
        else:
            result["parity"] = None
        if cell.model.reference_config:
            result["moe"] = moe_figures(cell.model.reference_config, first_outputs)
        result["memory"] = {"device": session.memory()}
    finally:
        session.close()
