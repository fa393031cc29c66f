"""The harness: one work item (backend × model × scenario × settings) -> one `CellResult`.

It knows nothing about any backend or scenario: it drives the `Adapter`/`Session`
contract through timed phases, each its own step:

    probe -> resolve feeds -> load (session_create_ms) -> specialize (compile_ms, static-shape
    stacks only) -> first run (first_inference_ms) -> placement (placement_ms, bookkeeping)
    -> scenario -> [specialize for the golden shapes] -> parity -> model figures

A phase's time covers that phase only. Failures of the backend become the result's
status, never an exception out of `run_work_item`; figures computed after the
timing (model extras) that fail become warnings on an ok result, so a finished
measurement is never discarded.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from portable import reference, registry
from portable.adapter import Adapter, Session
from portable.energy import EnergyMeter
from portable.errors import (
    BackendUnavailable,
    InputError,
    ModelError,
    PlacementError,
    PortableError,
    UnsupportedModel,
)
from portable.inputs import InputSpec, describe_feeds, feed_specs, make_feeds
from portable.modelsource import ModelSource
from portable.parity import compare
from portable.records import CellResult, ErrorInfo, Memory, Rules, Status, Throughput
from portable.scenarios import get as get_scenario
from portable.sessions import ShapeSets, session_config
from portable.signature import read_signature
from portable.stats import median_ci, noise_warning, summarize_ns
from portable.timing import BenchSettings, ScenarioRun

log = logging.getLogger(__name__)

#: Which status an error raised by a backend or by the inputs gives the result.
_STATUS_BY_ERROR: tuple[tuple[type[BaseException], Status], ...] = (
    (BackendUnavailable, Status.UNAVAILABLE),
    (UnsupportedModel, Status.UNSUPPORTED),
    (PlacementError, Status.REFUSED),
    (ModelError, Status.INVALID),
    (InputError, Status.INVALID),
    (PortableError, Status.ERROR),
)


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: everything a process (here or on another machine) needs to run it."""

    backend: str
    options: Mapping[str, str]
    model: ModelSource
    settings: BenchSettings
    scenario: str = "latency"
    inputs: InputSpec = field(default_factory=InputSpec)
    """The user's shapes, dims and data for the model's inputs (the rest is generated)."""
    keep_outputs: bool = False
    """Hand the first run's outputs back (`CellResult.outputs`) for a cross-backend check."""

    def label(self) -> str:
        return (f"{self.backend} · {self.model.name} · batch {self.settings.batch} "
                f"× seq {self.settings.seq}")

    def empty_result(self) -> CellResult:
        return CellResult(self.backend, dict(self.options), self.scenario,
                          self.settings.batch, self.settings.seq)


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


def error_info(exc: BaseException, with_traceback: bool = False) -> ErrorInfo:
    text = "".join(traceback.format_exception(exc)) if with_traceback else None
    return ErrorInfo(type(exc).__name__, str(exc), getattr(exc, "hint", ""), text)


def status_for(exc: BaseException) -> Status:
    return next((status for kind, status in _STATUS_BY_ERROR if isinstance(exc, kind)),
                Status.ERROR)


def run_work_item(item: WorkItem) -> CellResult:
    """Run one item in this process; every backend failure is recorded in the result."""
    result = item.empty_result()
    try:
        adapter = registry.create(item.backend, item.options)
        result.backend = adapter.name
        result.device = adapter.probe()
        _measure(adapter, item, result)
        result.status = Status.OK
    except PortableError as exc:
        result.fail(status_for(exc), error_info(exc))
    except Exception as exc:  # a backend that raises must not end the matrix
        log.debug("backend %s raised", item.backend, exc_info=True)
        result.fail(Status.ERROR, error_info(exc, with_traceback=True))
    result.memory = Memory(peak_rss_bytes(), result.memory.device)
    return result


def _timed(call: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter_ns()
    value = call(*args)
    return value, (time.perf_counter_ns() - t0) / 1e6


def _golden(model: ModelSource, result: CellResult) -> Any:
    """The golden inputs/outputs, read before anything is timed; a bad file is a warning."""
    try:
        return model.golden()
    except ModelError as exc:
        result.warnings.append(f"no golden parity: {exc}")
        return None


def _measure(adapter: Adapter, item: WorkItem, result: CellResult) -> None:
    settings = item.settings
    scenario = get_scenario(item.scenario)
    strict = settings.strict or adapter.default_strict
    # From the ONNX file, not the session: some runtimes drop symbolic dim names,
    # and every backend must get the same arrays. Resolved before load(), so a
    # static-shape stack can be told what will run.
    signature = read_signature(item.model.path)
    feeds = make_feeds(feed_specs(signature, item.inputs), settings.batch, settings.seq,
                       settings.seed, item.model.reference_config, item.inputs,
                       signature.index_bounds)
    result.inputs = describe_feeds(feeds)
    golden = _golden(item.model, result)

    config = session_config(adapter, feeds, threads=settings.threads, strict=strict,
                            model_sha256=item.model.sha256())
    session, result.session_create_ms = _timed(adapter.load, item.model.path, config)
    shape_sets = ShapeSets.of(adapter, session)
    try:
        result.compilations = shape_sets.compilations  # filled as each shape set compiles
        shape_sets.ensure(feeds)
        first_outputs, result.first_inference_ms = _timed(_run_synced, session, feeds)
        if item.keep_outputs:
            result.outputs = first_outputs
        placement, result.placement_ms = _timed(session.placement)
        result.placement = placement
        result.compute_precision = session.compute_precision
        if placement.has_fallback and strict:
            raise PlacementError(
                f"{adapter.name}: nodes ran off {placement.requested}: "
                f"{dict(placement.nodes_by_device)} ({', '.join(placement.fallback_op_types)})"
            )
        meter = EnergyMeter.start()
        run = scenario.measure(session, feeds, settings)
        runs = settings.warmup + len(run.samples_ns)
        result.energy = meter.stop(tokens=runs * settings.batch * settings.seq)
        _record_run(result, run, settings)
        if golden is not None:
            shape_sets.ensure(golden[0])
            result.parity = compare(session.run(golden[0]), golden[1],
                                    "golden outputs from PyTorch eager", session.compute_precision)
        result.memory = Memory(device=session.memory())
    finally:
        session.close()
    _add_model_figures(item.model, first_outputs, result)


def _run_synced(session: Session, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    outputs = session.run(feeds)
    session.synchronize()
    return outputs


def _record_run(result: CellResult, run: ScenarioRun, settings: BenchSettings) -> None:
    latency = summarize_ns(run.samples_ns)
    latency["median_ci"] = median_ci(run.samples_ns, seed=settings.seed)
    result.warnings.extend(w for w in (noise_warning(latency),) if w)
    samples_per_s = settings.batch * 1000.0 / latency["mean"] if latency["count"] else 0.0
    if run.rate_per_s is not None:  # arrivals, not the device, set the pace
        samples_per_s = settings.batch * run.rate_per_s
    result.latency = latency
    result.raw_latency_ns = run.samples_ns
    result.throughput = Throughput(samples_per_s, samples_per_s * settings.seq)
    result.rules = Rules(run.rules_met, run.reason, settings.warmup, settings.iterations,
                         settings.min_duration_s, settings.max_duration_s, run.duration_s)
    result.extras.update(run.extras)


def _add_model_figures(model: ModelSource, outputs: Mapping[str, np.ndarray],
                       result: CellResult) -> None:
    """The reference model's figures (parameters, expert load): a warning when they fail."""
    try:
        figures = reference.figures(model.reference_config, outputs)
    except Exception as exc:  # computed after timing: never discard the measurement
        log.debug("model figures failed", exc_info=True)
        result.warnings.append(f"no model figures: {type(exc).__name__}: {exc}")
        return
    if figures is not None:
        result.extras["moe"] = figures
