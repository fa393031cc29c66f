"""The run pipeline: a `RunRequest` is planned into work items, executed by a launcher,
and finalized into one result document. Commands and scripts call this; none re-implements it.

    from portable.run import RunRequest, run
    outcome = run(RunRequest.build("moe-tiny", ["cpu", "openvino"]))
    print(outcome.document["results"][0]["latency"]["p50"], outcome.exit_code)

`plan` makes one `WorkItem` per backend × batch; `execute` runs them through a
`Launcher` and keeps every completed result when interrupted; `finalize` compares
backends on the same inputs, adds rooflines and cost, and builds the document.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portable import registry, scenarios
from portable.crosscheck import cross_check
from portable.errors import AdapterLoadError, BackendUnavailable
from portable.harness import WorkItem
from portable.inputs import InputSpec
from portable.launchers import Launcher, ProcessLauncher
from portable.modelsource import ModelSource, resolve
from portable.records import CellResult, exit_code
from portable.results import build_document
from portable.timing import BenchSettings

DEFAULT_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class BackendSpec:
    name: str
    """Canonical registry name (aliases resolved)."""
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    model: ModelSource
    backends: tuple[BackendSpec, ...]
    scenario: str = "latency"
    settings: BenchSettings = field(default_factory=BenchSettings)
    batches: tuple[int, ...] = ()
    """Batch sizes, one work item each per backend; empty: the scenario's defaults."""
    inputs: InputSpec = field(default_factory=InputSpec)
    price_per_hour: float | None = None
    """Price of the machine per hour: adds cost per million tokens to each ok result."""

    @classmethod
    def build(cls, model: str | ModelSource,
              backends: Sequence[str | tuple[str, Mapping[str, str]]],
              **fields: Any) -> RunRequest:
        """A request from plain values: a preset name or .onnx path, backend names (or
        ``(name, options)`` pairs), and any other field or `BenchSettings` field by name."""
        setting_names = {f.name for f in dataclasses.fields(BenchSettings)}
        settings = BenchSettings(**{k: fields.pop(k) for k in list(fields) if k in setting_names})
        specs = tuple(
            BackendSpec(registry.canonical_name(b), {}) if isinstance(b, str)
            else BackendSpec(registry.canonical_name(b[0]), dict(b[1]))
            for b in backends)
        source = model if isinstance(model, ModelSource) else resolve(model)
        return cls(source, specs, settings=settings, **fields)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return self.batches or scenarios.SCENARIOS[self.scenario].default_batches


def check(backends: Iterable[BackendSpec], scenario: str, settings: BenchSettings) -> None:
    """Fail before anything runs (or is exported) on what no work item could survive.

    An unknown backend, bad options or a scenario that cannot run here raise (usage
    errors); a backend that is merely unavailable is left for its result to say.
    """
    for spec in backends:
        with contextlib.suppress(BackendUnavailable, AdapterLoadError):
            registry.create(spec.name, spec.options)
    scenarios.get(scenario).check(settings)


def plan(request: RunRequest, keep_outputs: bool | None = None) -> list[WorkItem]:
    """One work item per backend × batch size, backends in the order given; outputs are
    kept for comparison when several backends run (or when `keep_outputs` says so)."""
    keep = len(request.backends) > 1 if keep_outputs is None else keep_outputs
    request.model.sha256()  # hashed once here; every item (and the document) reuses it
    return [
        WorkItem(spec.name, dict(spec.options), request.model,
                 dataclasses.replace(request.settings, batch=size), request.scenario,
                 request.inputs, keep_outputs=keep)
        for spec in request.backends for size in request.batch_sizes
    ]


@dataclass
class Execution:
    results: list[CellResult]
    interrupted: bool = False
    planned: int = 0


def _announced(items: Iterable[WorkItem], on_start: Callable[[WorkItem], None] | None
               ) -> Iterator[WorkItem]:
    for item in items:
        if on_start is not None:
            on_start(item)
        yield item


def execute(items: Sequence[WorkItem], launcher: Launcher,
            on_start: Callable[[WorkItem], None] | None = None,
            on_result: Callable[[CellResult], None] | None = None) -> Execution:
    """Run `items`; on Ctrl-C stop and keep every result completed so far."""
    execution = Execution([], planned=len(items))
    try:
        for result in launcher.launch(_announced(items, on_start)):
            execution.results.append(result)
            if on_result is not None:
                on_result(result)
    except KeyboardInterrupt:
        execution.interrupted = True
    return execution


@dataclass
class RunOutcome:
    document: dict[str, Any]
    results: list[CellResult]
    interrupted: bool
    notes: list[str]
    """Things the user should hear about the run as a whole (a missing calibration)."""

    @property
    def exit_code(self) -> int:
        return exit_code(self.results, self.interrupted)


def add_cost(results: Iterable[CellResult], price_per_hour: float) -> None:
    """Cost per million tokens at each ok result's measured tokens/s."""
    for result in results:
        if result.ok and result.throughput and result.throughput.tokens_per_s:
            result.extras["cost"] = {
                "price_per_hour": price_per_hour,
                "per_million_tokens": price_per_hour / 3600 / result.throughput.tokens_per_s * 1e6,
            }


def finalize(request: RunRequest, execution: Execution) -> RunOutcome:
    from portable.roofline import annotate

    results = execution.results
    for size in dict.fromkeys(r.batch for r in results):  # same inputs: compare per batch
        cross_check([r for r in results if r.batch == size], request.model.precision)
    scenarios.get(request.scenario).finalize(request.model, results)
    notes = [note for note in (annotate(results, request.model.reference_config),) if note]
    if request.price_per_hour is not None:
        add_cost(results, request.price_per_hour)
    settings = {**request.settings.to_dict(), "scenario": request.scenario,
                "batches": list(request.batch_sizes)}
    packages = registry.declared_packages(spec.name for spec in request.backends)
    document = build_document(request.model.to_dict(), settings,
                              [r.to_dict() for r in results], packages)
    if execution.interrupted:
        document["interrupted"] = True
    return RunOutcome(document, results, execution.interrupted, notes)


def finalize_against(request: RunRequest, original: ModelSource, execution: Execution
                     ) -> RunOutcome:
    """`execution` ran `request`'s items and then the same items on `original` (see
    `plan_against`): each converted result is compared with the original's on its backend,
    by the converted model's precision rules."""
    half = len(execution.results) // 2 if not execution.interrupted else 0
    converted, originals = execution.results[:half], execution.results[half:]
    for mine, theirs in zip(converted, originals, strict=True):
        theirs.backend = f"{theirs.backend} · {original.name}"
        cross_check([theirs, mine], request.model.precision)
    return finalize(request, Execution(converted, execution.interrupted, execution.planned))


def plan_against(request: RunRequest, original: ModelSource) -> list[WorkItem]:
    """`request`'s items, then the same items on the `original` model, outputs kept."""
    return (plan(request, keep_outputs=True)
            + plan(dataclasses.replace(request, model=original), keep_outputs=True))


def run(request: RunRequest, launcher: Launcher | None = None,
        on_start: Callable[[WorkItem], None] | None = None,
        on_result: Callable[[CellResult], None] | None = None) -> RunOutcome:
    """Check, plan, execute (each item in its own process by default) and finalize."""
    check(request.backends, request.scenario, request.settings)
    items = plan(request)
    execution = execute(items, launcher or ProcessLauncher(DEFAULT_TIMEOUT_S),
                        on_start, on_result)
    return finalize(request, execution)
