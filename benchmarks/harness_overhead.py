"""How much does portable's timing loop add over a bare ``session.run`` loop?

Both loops drive the same ONNX Runtime ``InferenceSession`` (the one the ort-cpu
adapter wraps) on the same inputs, in interleaved blocks whose order alternates
each round, so drift on a shared machine lands on both. Per round it compares the
harness's p50 (``measure_latency`` around the adapter's ``step(); synchronize()``)
with the p50 of ``perf_counter_ns`` around a bare ``InferenceSession.run``.
Target: median ratio <= 1.02.

    .venv/bin/python benchmarks/harness_overhead.py               # moe-tiny, batch 1, seq 128
    .venv/bin/python benchmarks/harness_overhead.py --seq 16 --rounds 11 --runs 500
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from portable import registry
from portable.adapter import SessionConfig
from portable.feeds import make_feeds
from portable.models.config import get_preset
from portable.models.export import ensure_exported
from portable.timing import BenchSettings, measure_latency

TARGET = 1.02


def bare_loop(ort_session, feeds: dict, runs: int) -> list[int]:
    names = [o.name for o in ort_session.get_outputs()]
    run, clock = ort_session.run, time.perf_counter_ns
    samples = []
    for _ in range(runs):
        t0 = clock()
        run(names, feeds)
        samples.append(clock() - t0)
    return samples


def harness_loop(session, feeds: dict, runs: int) -> list[int]:
    settings = BenchSettings(warmup=0, iterations=runs, min_duration_s=0.0, max_duration_s=1e9)
    return measure_latency(session.prepare(feeds), session.synchronize, settings).samples_ns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="moe-tiny")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=300, help="timed runs per block")
    args = parser.parse_args(argv)

    exported = ensure_exported(get_preset(args.preset))
    config = SessionConfig(threads=args.threads)
    session = registry.create("ort-cpu").load(exported.onnx_path, config)
    ort_session = session._sess  # the very InferenceSession the adapter wraps (benchmark only)
    feeds = make_feeds(session.inputs, args.batch, args.seq, 0, exported.config.to_dict())
    bare_loop(ort_session, feeds, args.runs)  # warm up: caches, allocator, CPU clocks
    harness_loop(session, feeds, args.runs)

    rows = []
    for i in range(args.rounds):
        order = ("bare", "harness") if i % 2 == 0 else ("harness", "bare")
        p50 = {}
        for which in order:
            samples = (bare_loop(ort_session, feeds, args.runs) if which == "bare"
                       else harness_loop(session, feeds, args.runs))
            p50[which] = float(np.percentile(samples, 50)) / 1e3
        rows.append((i + 1, order[0], p50["bare"], p50["harness"], p50["harness"] / p50["bare"]))
    session.close()

    ratio = statistics.median(r[4] for r in rows)
    print(f"`{' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}` · {args.preset} "
          f"batch {args.batch} × seq {args.seq}, {args.threads} thread(s), "
          f"{args.rounds} rounds × {args.runs} runs per loop\n")
    print("| round | first | bare p50 µs | harness p50 µs | ratio |")
    print("|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.4f} |")
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"\nmedian ratio harness/bare: **{ratio:.4f}** ({verdict} the target ≤ {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
