"""Timing primitives: run settings, a scenario's raw measurement, the latency loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


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
    rate: float | None = None
    """Server scenario: target arrival rate, requests/s (Poisson); None: half the rate one
    worker serves back to back, measured before the run."""
    p99_bound_ms: float = 100.0
    """Server scenario: the latency bound at the 99th percentile, queueing included."""
    find_peak: bool = False
    """Server scenario: search for the highest rate that keeps p99 under the bound."""
    peak_steps: int = 6
    prompt_len: int = 64
    """Generate scenario: prompt tokens (prefill)."""
    gen_len: int = 32
    """Generate scenario: tokens generated per sequence (the prefill's first one included)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioRun:
    samples_ns: list[int] = field(default_factory=list)
    duration_s: float = 0.0
    rules_met: bool = False
    reason: str = ""
    rate_per_s: float | None = None
    """Completed requests/s when arrivals, not the device, set the pace (server scenario)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Figures of the scenario's own, stored in the cell under their keys."""
    throughput: tuple[float, float | None] | None = None
    """(samples/s, tokens/s) when the scenario defines them otherwise than batch / mean
    latency (generation: sequences/s and output tokens/s)."""



def measure_latency(
    step: Callable[[], object], synchronize: Callable[[], None], settings: BenchSettings
) -> ScenarioRun:
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
            return ScenarioRun(samples, elapsed / 1e9, True)
        if elapsed >= max_ns:
            return ScenarioRun(
                samples, elapsed / 1e9, False,
                f"stopped by --max-duration {settings.max_duration_s:g}s after "
                f"{len(samples)} of {settings.iterations} runs",
            )
