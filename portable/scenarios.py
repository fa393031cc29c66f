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
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from portable.adapter import Session
from portable.errors import BackendUnavailable, PortableError
from portable.feeds import ResolvedInputs, resolve_inputs
from portable.inputs import InputSpec
from portable.modelsource import ModelSource
from portable.records import CellResult
from portable.timing import BenchSettings, ScenarioRun, measure_latency


class Scenario(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    default_batches: ClassVar[tuple[int, ...]] = (1,)
    with_past: ClassVar[bool] = False
    """Runs a preset's decoder with a KV cache instead of its plain forward."""
    signature_inputs: ClassVar[bool] = True
    """Feeds come from the model's signature and the input options (checked up front)."""

    def check(self, settings: BenchSettings) -> None:  # noqa: B027 - most scenarios need nothing
        """Raise a PortableError before anything runs when this scenario cannot run here."""

    def check_model(self, model: ModelSource, settings: BenchSettings,  # noqa: B027
                    given: InputSpec) -> None:
        """Raise a PortableError (exit 2) before anything runs when the model does not fit."""

    def inputs(self, model: ModelSource, settings: BenchSettings,
               given: InputSpec) -> ResolvedInputs:
        """The feeds every backend runs, from the model file (not a session)."""
        return resolve_inputs(model.path, settings.batch, settings.seq, settings.seed,
                              model.reference_config, given)

    def finalize(self, model: ModelSource, results: Sequence[CellResult]) -> None:  # noqa: B027
        """Compare the results with each other or a reference, once all have run."""

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


class GenerateScenario(Scenario):
    name = "generate"
    description = ("autoregressive decoding with a KV cache (--prompt-len, --gen-len): "
                   "TTFT, TPOT, output tokens/s, token parity")
    with_past = True
    signature_inputs = False

    def check_model(self, model: ModelSource, settings: BenchSettings,
                    given: InputSpec) -> None:
        from portable import generation_run

        generation_run.check_decoder(model, settings, given)

    def inputs(self, model: ModelSource, settings: BenchSettings,
               given: InputSpec) -> ResolvedInputs:
        from portable import generation_run

        return generation_run.prompt_inputs(model, settings, given)

    def measure(self, session: Session, feeds: Mapping[str, np.ndarray],
                settings: BenchSettings) -> ScenarioRun:
        from portable import generation_run

        return generation_run.measure(session, feeds, settings)

    def finalize(self, model: ModelSource, results: Sequence[CellResult]) -> None:
        from portable import generation_run

        generation_run.check_tokens(model, results)


SCENARIOS: Mapping[str, type[Scenario]] = {
    cls.name: cls
    for cls in (LatencyScenario, ThroughputScenario, ServerScenario, GenerateScenario)
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]()
    except KeyError:
        raise PortableError(
            f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
