"""The server scenario: requests arriving as a Poisson process, driven by MLPerf LoadGen.

LoadGen (``mlcommons-loadgen``) schedules the arrivals at ``--rate`` and judges the
run by MLPerf's rules (minimum duration and query count, the latency bound at the
99th percentile, early stopping); its VALID/INVALID verdict becomes the cell's
stop-rule verdict. Requests queue for one worker that runs ``step(); synchronize()``,
so a latency includes the time a request waited: what a user of a server sees.
``--find-peak`` bisects the rate for the highest one LoadGen judges VALID (p99
under the bound, minimum duration and query count, early stopping). Every run issues
at least `MIN_QUERIES`, enough for the early-stopping p99 estimate, so a trial is
judged on its latency, not on a lack of samples. Without ``--rate`` requests arrive
at half the rate one worker can serve back to back.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portable.timing import BenchSettings, ScenarioRun

log = logging.getLogger(__name__)

_VERDICT_KEYS = {
    "result_validity": "verdict",
    "result_min_duration_met": "min_duration_met",
    "result_min_queries_met": "min_queries_met",
    "result_perf_constraints_met": "latency_bound_met",
    "early_stopping_met": "early_stopping_met",
    "result_completed_samples_per_sec": "completed_per_s",
    "result_scheduled_samples_per_sec": "scheduled_per_s",
    "result_50.00_percentile_latency_ns": "p50_ns",
    "result_99.00_percentile_latency_ns": "p99_ns",
    "result_query_count": "query_count",
    "loadgen_version": "loadgen_version",
}
_REASONS = {
    "min_duration_met": "minimum duration not met: raise --max-duration",
    "min_queries_met": "minimum query count not met: raise --min-duration or --rate",
    "latency_bound_met": "p99 latency above --p99-bound-ms: lower --rate or raise the bound",
    "early_stopping_met": "too few queries for MLPerf's early-stopping p99 estimate: "
                          "raise --min-duration (or --rate)",
}

MIN_QUERIES = 600
"""Queries a server run issues at least: LoadGen's early-stopping estimate of p99 needs
several hundred (measured here: 288 queries INVALID, 595 VALID)."""
DEFAULT_LOAD = 0.5
"""Without --rate, requests arrive at this fraction of the rate one worker can serve."""


def parse_detail_log(text: str) -> dict[str, Any]:
    """The verdict and figures in LoadGen's ``mlperf_log_detail.txt`` (``:::MLLOG`` lines)."""
    found: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        entry = _mllog_entry(line[len(":::MLLOG "):])
        name = _VERDICT_KEYS.get(entry.get("key"))
        if name and "value" in entry:
            found[name] = entry["value"]
    return found


_NON_FINITE = re.compile(r"(?<=[:\[,\s])-?(?:nan|inf)(?=\s*[,}\]])", re.IGNORECASE)


def _mllog_entry(text: str) -> dict[str, Any]:
    """One ``:::MLLOG`` entry; LoadGen writes ``nan``/``-nan`` (not JSON) for figures it could
    not compute: those become None. A line that still does not parse is skipped."""
    try:
        entry = json.loads(text)
    except ValueError:
        try:
            entry = json.loads(_NON_FINITE.sub("null", text))
        except ValueError:
            log.debug("skipping an unreadable LoadGen log line: %.200s", text)
            return {}
    return entry if isinstance(entry, dict) else {}


def invalid_reasons(verdict: dict[str, Any]) -> list[str]:
    return [reason for key, reason in _REASONS.items() if verdict.get(key) is False]


def run_loadgen(step: Callable[[], object], synchronize: Callable[[], None], rate: float,
                p99_bound_ms: float, min_duration_s: float, max_duration_s: float,
                min_queries: int, seed: int) -> tuple[list[int], dict[str, Any]]:
    """One LoadGen server run at `rate` queries/s; the raw latencies (ns) and LoadGen's verdict."""
    import mlperf_loadgen as lg

    pending: queue.SimpleQueue = queue.SimpleQueue()
    latencies: list[int] = []
    failure: list[BaseException] = []

    def issue(samples: list[Any]) -> None:
        arrived = time.perf_counter_ns()
        for sample in samples:
            pending.put((sample.id, arrived))

    def serve() -> None:
        while (item := pending.get()) is not None:
            query_id, arrived = item
            try:
                if not failure:
                    step()
                    synchronize()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
            latencies.append(time.perf_counter_ns() - arrived)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0)])

    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = rate
    settings.server_target_latency_ns = int(p99_bound_ms * 1e6)
    settings.min_duration_ms = int(min_duration_s * 1000)
    settings.max_duration_ms = int(max_duration_s * 1000)
    settings.min_query_count = min_queries
    settings.schedule_rng_seed = seed
    worker = threading.Thread(target=serve, name="portable-server-worker", daemon=True)
    worker.start()
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(1, 1, lambda _: None, lambda _: None)  # one prepared input, reused
    try:
        with tempfile.TemporaryDirectory(prefix="portable-loadgen-") as logs:
            log_settings = lg.LogSettings()
            log_settings.log_output.outdir = logs
            log_settings.log_output.copy_summary_to_stdout = False
            lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
            verdict = parse_detail_log(Path(logs, "mlperf_log_detail.txt").read_text())
    finally:
        pending.put(None)
        worker.join()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    if failure:
        raise failure[0]
    return latencies, verdict


def under_bound(verdict: dict[str, Any]) -> bool:
    """A VALID LoadGen run: p99 within the bound, minimums and early stopping met."""
    return verdict.get("verdict") == "VALID"


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def _summary(rate: float, verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        "rate": rate,
        "under_bound": under_bound(verdict),
        "verdict": verdict.get("verdict", "INVALID"),
        "achieved_rate": verdict.get("completed_per_s"),
        "p99_ms": _ms(verdict.get("p99_ns")),
    }


def find_peak(trial: Callable[[float], tuple[list[int], dict[str, Any]]], ceiling: float,
              steps: int) -> tuple[float | None, list[dict[str, Any]], Any]:
    """Bisect (0, ceiling] for the highest rate `under_bound`; `steps` trials.

    Returns the peak (None if no trial kept under the bound), every trial, and the
    peak trial's outcome (else the last one), so the cell reports the run at the peak.
    """
    low, high = 0.0, ceiling
    trials: list[dict[str, Any]] = []
    best: tuple[float | None, Any] = (None, None)
    last = None
    for _ in range(steps):
        rate = (low + high) / 2
        last = trial(rate)
        trials.append(_summary(rate, last[1]))
        if under_bound(last[1]):
            low, best = rate, (rate, last)
        else:
            high = rate
    peak, outcome = best
    return peak, trials, outcome if outcome is not None else last


def _service_rate(step: Callable[[], object], synchronize: Callable[[], None],
                  runs: int = 20, min_seconds: float = 0.25) -> float:
    """Requests/s one worker serves back to back (at least `runs` runs and `min_seconds`):
    the ceiling of the peak search. Mean, not median, so a contended machine's slow
    runs count, as they will under load."""
    count, started = 0, time.perf_counter_ns()
    while count < runs or time.perf_counter_ns() - started < min_seconds * 1e9:
        step()
        synchronize()
        count += 1
    return count * 1e9 / max(time.perf_counter_ns() - started, 1)


def measure_server(step: Callable[[], object], synchronize: Callable[[], None],
                   settings: BenchSettings) -> ScenarioRun:
    """Warm up, then one LoadGen run at ``settings.rate``, or a peak search.

    The run of the reported rate, with the scenario's figures under ``extras["server"]``.
    """
    for _ in range(settings.warmup):
        step()
        synchronize()

    def trial(rate: float) -> tuple[list[int], dict[str, Any]]:
        started = time.perf_counter()
        raw, verdict = run_loadgen(step, synchronize, rate, settings.p99_bound_ms,
                                   settings.min_duration_s, settings.max_duration_s,
                                   max(settings.iterations, MIN_QUERIES), settings.seed)
        verdict["duration_s"] = time.perf_counter() - started
        log.info("server trial at %.3g/s: %s", rate, verdict.get("verdict"))
        return raw, verdict

    figures: dict[str, Any] = {"p99_bound_ms": settings.p99_bound_ms}
    if settings.find_peak:
        ceiling = _service_rate(step, synchronize)
        peak, trials, (raw, verdict) = find_peak(trial, ceiling, settings.peak_steps)
        rate = peak if peak is not None else trials[-1]["rate"]
        figures.update(peak_rate=peak, search_ceiling=ceiling, trials=trials)
    else:
        rate = settings.rate or DEFAULT_LOAD * _service_rate(step, synchronize)
        raw, verdict = trial(rate)
    reasons = invalid_reasons(verdict)
    valid = verdict.get("verdict") == "VALID"
    figures.update(_summary(rate, verdict))
    figures.update(
        scheduled_rate=verdict.get("scheduled_per_s"),
        p50_ms=_ms(verdict.get("p50_ns")),
        invalid_reasons=reasons,
        loadgen_version=verdict.get("loadgen_version"),
    )
    reason = "" if valid else "LoadGen: INVALID" + (f" ({'; '.join(reasons)})" if reasons else "")
    return ScenarioRun(raw, verdict["duration_s"], valid, reason,
                       rate_per_s=verdict.get("completed_per_s"), extras={"server": figures})
