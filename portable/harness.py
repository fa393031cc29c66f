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
import os
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
from portable.environment import usable_cores
from portable.errors import (
    BackendUnavailable,
    InputError,
    ModelError,
    PlacementError,
    PortableError,
    UnsupportedModel,
    condense_message,
)
from portable.feeds import describe_feeds
from portable.inputs import InputSpec
from portable.modelsource import ModelSource
from portable.parity import compare
from portable.precision import effective_precision, judge
from portable.privacy import redact
from portable.records import CellResult, ErrorInfo, Memory, Rules, Status, Throughput
from portable.scenarios import get as get_scenario
from portable.sessions import ShapeSets, session_config
from portable.stats import load_warning, median_ci, noise_warning, summarize_ns
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
    text = redact("".join(traceback.format_exception(exc))) if with_traceback else None
    message = condense_message(str(exc)) or type(exc).__name__
    return ErrorInfo(type(exc).__name__, message, getattr(exc, "hint", ""), text)


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
    resolved = scenario.inputs(item.model, settings, item.inputs)
    feeds = resolved.feeds
    result.inputs = describe_feeds(feeds)
    result.batch, result.seq = resolved.batch_seq()  # what runs, not what the flags said
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
        meter, load_before = EnergyMeter.start(), _load_average()
        run = scenario.measure(session, feeds, settings)
        runs = settings.warmup + len(run.samples_ns)
        result.energy = meter.stop(tokens=runs * result.batch * (result.seq or 0))
        _record_run(result, run, settings)
        _record_conditions(result, session.threads or settings.threads,
                           max(load_before, _load_average()))
        if golden is not None:
            shape_sets.ensure(golden[0])
            _golden_parity(item.model, session, golden, result)
        result.memory = Memory(device=session.memory())
    finally:
        session.close()
    _add_model_figures(item.model, first_outputs, result)


def _golden_parity(model: ModelSource, session: Session, golden: Any,
                   result: CellResult) -> None:
    """Outputs on the golden inputs against PyTorch's; below fp32 (a quantized variant, a
    device computing in fp16/bf16), the routing-aware verdict of `portable.precision`."""
    outputs = session.run(golden[0])
    result.parity = compare(outputs, golden[1], "golden outputs from PyTorch eager",
                            session.compute_precision)
    precision = effective_precision(model.precision, session.compute_precision)
    if precision != "fp32":
        result.precision_parity = judge(outputs, golden[1], precision, model.golden_reference(),
                                        reference.routing_groups(model.reference_config))


def _run_synced(session: Session, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    outputs = session.run(feeds)
    session.synchronize()
    return outputs


def _record_run(result: CellResult, run: ScenarioRun, settings: BenchSettings) -> None:
    latency = summarize_ns(run.samples_ns)
    latency["median_ci"] = median_ci(run.samples_ns, seed=settings.seed)
    result.warnings.extend(w for w in (noise_warning(latency),) if w)
    samples_per_s = result.batch * 1000.0 / latency["mean"] if latency["count"] else 0.0
    if run.rate_per_s is not None:  # arrivals, not the device, set the pace
        samples_per_s = result.batch * run.rate_per_s
    result.latency = latency
    result.raw_latency_ns = run.samples_ns
    tokens_per_s = samples_per_s * result.seq if result.seq is not None else None
    result.throughput = Throughput(*(run.throughput or (samples_per_s, tokens_per_s)))
    result.rules = Rules(run.rules_met, run.reason, settings.warmup, settings.iterations,
                         settings.min_duration_s, settings.max_duration_s, run.duration_s)
    result.extras.update(run.extras)


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not every platform has one
        return 0.0


def _record_conditions(result: CellResult, threads: int | None, load_average: float) -> None:
    """The threads the runtime used and how busy the machine was while the scenario ran."""
    cores = usable_cores() or os.cpu_count()
    result.conditions = {"threads": threads, "load_average_1m": load_average,
                         "usable_cores": cores}
    result.warnings.extend(w for w in (load_warning(load_average, cores or 1),) if w)


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
