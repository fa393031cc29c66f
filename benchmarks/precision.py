"""Precision variants side by side: file size, decode and prefill latency, agreement, verdict.

For one preset, every precision (fp32, fp16, bf16, int8, int4) runs on ort-cpu and
openvino (f32 inference precision) at decode shape (batch 1 x seq 1) and prefill shape
(batch 1 x seq 128). Each round runs every cell once, each in its own process, in rotated
order, so drift on a shared machine hits all of them alike; the table gives the median p50
over rounds and its ratio to fp32 on the same backend. Agreement is judged once per
variant and backend on the golden inputs, by the precision's rules (portable.precision).

    .venv/bin/python benchmarks/precision.py --model moe-base --rounds 3 --threads 2

Targets (issue 12): int8 <= 0.30x and int4 <= 0.18x fp32 on disk; on moe-base ort-cpu, decode
int8 <= 0.75x and int4 <= 0.6x fp32; prefill no slower than fp32; int8 expert agreement
>= 0.98 and top-1 >= 0.97.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from portable import registry
from portable.adapter import SessionConfig
from portable.errors import PortableError
from portable.harness import BenchSettings, Cell
from portable.isolation import run_isolated
from portable.modelsource import ModelSource, resolve
from portable.precision import PRECISIONS, effective_precision, judge

BACKENDS = ("ort-cpu", "openvino")
SHAPES = {"decode": (1, 1), "prefill": (1, 128)}


def agreement(source: ModelSource, backend: str, threads: int | None) -> dict[str, Any]:
    """The precision verdict of one variant on one backend, on the golden inputs."""
    inputs, golden = source.golden()
    try:
        session = registry.create(backend, {}).load(source.path, SessionConfig(threads=threads))
    except PortableError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    try:
        outputs = session.run(inputs)
        precision = effective_precision(source.precision, session.compute_precision)
    finally:
        session.close()
    config = source.reference_config
    return judge(outputs, golden, precision, source.golden_reference(),
                 (config["n_groups"], config["topk_groups"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="moe-small")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--min-duration", type=float, default=0.5)
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()

    precisions = args.precisions.split(",")
    backends = args.backends.split(",")
    sources = {p: resolve(args.model, precision=p) for p in precisions}
    cells = [(p, b, shape) for p in precisions for b in backends for shape in SHAPES]
    p50s: dict[tuple[str, str, str], list[float]] = {c: [] for c in cells}
    status: dict[tuple[str, str, str], str] = {}
    for round_index in range(args.rounds):
        shift = round_index * len(cells) // max(args.rounds, 1)
        for key in cells[shift:] + cells[:shift]:
            precision, backend, shape = key
            batch, seq = SHAPES[shape]
            settings = BenchSettings(batch=batch, seq=seq, warmup=5, iterations=args.iterations,
                                     min_duration_s=args.min_duration, threads=args.threads)
            result = run_isolated(Cell(backend, {}, sources[precision], settings), timeout_s=600)
            if result["status"] == "ok":
                p50s[key].append(result["latency"]["p50"])
            else:
                status[key] = f"{result['status']}: {result['error']['message'][:160]}"
    verdicts = {(p, b): agreement(sources[p], b, args.threads) for p in precisions
                for b in backends}

    fp32_size = sources["fp32"].path.stat().st_size if "fp32" in sources else None
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    print(f"command: `.venv/bin/python benchmarks/precision.py {flags}`\n")
    print(f"model {args.model}; decode = batch 1 x seq 1, prefill = batch 1 x seq 128; "
          f"threads {args.threads}; {args.rounds} interleaved rounds; p50 in ms (median of "
          "round p50s), ratio to fp32 on the same backend\n")
    print("| precision | backend | size MB (x fp32) | decode p50 (x fp32) | prefill p50 (x fp32) "
          "| expert agreement | top-1 | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in precisions:
        size = sources[precision].path.stat().st_size
        size_cell = f"{size / 1e6:.1f} ({size / fp32_size:.2f}x)" if fp32_size else f"{size:,}"
        for backend in backends:
            row = [precision, backend, size_cell]
            for shape in SHAPES:
                key = (precision, backend, shape)
                if not p50s[key]:
                    row.append(status.get(key, "no result"))
                    continue
                median = statistics.median(p50s[key])
                base = p50s.get(("fp32", backend, shape))
                ratio = f" ({median / statistics.median(base):.2f}x)" if base else ""
                row.append(f"{median:.3f}{ratio}")
            verdict = verdicts[(precision, backend)]
            if "error" in verdict:
                row += ["-", "-", verdict["error"][:200].replace("|", "/")]
            else:
                routing = verdict["routing"] or {}
                row += [f"{routing.get('expert_agreement', float('nan')):.3f}",
                        f"{verdict['distribution']['top1_agreement']:.3f}",
                        verdict["summary"].replace("|", "/")]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
