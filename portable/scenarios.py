"""Scenarios: how a prepared session is driven and timed. One class each, registered in SCENARIOS.

A scenario gets a loaded session, the resolved feeds and the run's settings, and
returns a `ScenarioRun`: raw per-request latencies, whether the stop rules were met,
and any figures of its own (the server scenario's LoadGen verdict). The harness
turns that into the cell's latency, throughput and rules; it never branches on
the scenario's name. A new scenario is one subclass added to `SCENARIOS`.
"""

from __future__ import annotations

import abc
import importlib.util
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from portable.adapter import Session
from portable.errors import BackendUnavailable, PortableError
from portable.timing import BenchSettings, ScenarioRun, measure_latency


class Scenario(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    default_batches: ClassVar[tuple[int, ...]] = (1,)

    def check(self, settings: BenchSettings) -> None:  # noqa: B027 - most scenarios need nothing
        """Raise a PortableError before anything runs when this scenario cannot run here."""

    @abc.abstractmethod
    def measure(self, session: Session, feeds: Mapping[str, np.ndarray],
                settings: BenchSettings) -> ScenarioRun:
        """Drive `session` on `feeds` under `settings`' stop rules."""


class LatencyScenario(Scenario):
    name = "latency"
    description = "one request at a time"

    def measure(self, session: Session, feeds: Mapping[str, np.ndarray],
                settings: BenchSettings) -> ScenarioRun:
        return measure_latency(session.prepare(feeds), session.synchronize, settings)


class ThroughputScenario(LatencyScenario):
    name = "throughput"
    description = "a sweep over --batch sizes, one cell per size"
    default_batches = (1, 4, 16, 64)


class ServerScenario(Scenario):
    name = "server"
    description = "Poisson arrivals at --rate, driven by MLPerf LoadGen"

    def check(self, settings: BenchSettings) -> None:
        if importlib.util.find_spec("mlperf_loadgen") is None:
            raise BackendUnavailable("the server scenario needs MLPerf LoadGen",
                                     "pip install 'portable[loadgen]'")
        if settings.min_duration_s <= 0:
            raise PortableError("--scenario server needs --min-duration > 0: LoadGen measures "
                                "the achieved rate and p99 over a timed window")

    def measure(self, session: Session, feeds: Mapping[str, np.ndarray],
                settings: BenchSettings) -> ScenarioRun:
        from portable.server import measure_server

        return measure_server(session.prepare(feeds), session.synchronize, settings)


SCENARIOS: Mapping[str, type[Scenario]] = {
    cls.name: cls for cls in (LatencyScenario, ThroughputScenario, ServerScenario)
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]()
    except KeyError:
        raise PortableError(
            f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
