"""Two real stacks side by side: ONNX Runtime CPU vs OpenVINO (f32 and bf16) vs PyTorch eager.

Each round runs every configuration once, in its own process, in interleaved order,
so drift on a shared machine hits all of them alike; the table gives the median
p50 over rounds, its spread, the ratio to ort-cpu measured in the same rounds, and
parity against PyTorch's golden outputs at the precision each stack computes in.

    .venv/bin/python benchmarks/stacks.py --rounds 5 --model moe-tiny --seq 128 --threads 2
"""

from __future__ import annotations

import argparse
import statistics

from portable.launchers import ProcessLauncher
from portable.modelsource import resolve
from portable.run import BackendSpec, RunRequest, run
from portable.timing import BenchSettings

CONFIGS = (
    ("ort-cpu", {}),
    ("openvino", {"inference_precision": "f32"}),
    ("openvino", {"inference_precision": "bf16"}),
    ("torch", {}),
)


def label(backend: str, options: dict[str, str]) -> str:
    return backend + "".join(f" {k}={v}" for k, v in options.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="moe-tiny")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--min-duration", type=float, default=1.0)
    args = parser.parse_args()

    source = resolve(args.model)
    settings = BenchSettings(batch=args.batch, seq=args.seq, warmup=5,
                             iterations=args.iterations, min_duration_s=args.min_duration,
                             threads=args.threads)
    p50s: dict[str, list[float]] = {label(b, o): [] for b, o in CONFIGS}
    last: dict[str, dict] = {}
    for round_index in range(args.rounds):
        order = CONFIGS[round_index % len(CONFIGS):] + CONFIGS[:round_index % len(CONFIGS)]
        for backend, options in order:
            request = RunRequest(source, (BackendSpec(backend, options),), settings=settings)
            result = run(request, ProcessLauncher(600)).document["results"][0]
            name = label(backend, options)
            last[name] = result
            if result["status"] == "ok":
                p50s[name].append(result["latency"]["p50"])

    base = statistics.median(p50s["ort-cpu"]) if p50s["ort-cpu"] else None
    flags = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in vars(args).items()
                     if value is not None)
    print(f"command: `.venv/bin/python benchmarks/stacks.py {flags}`\n")
    print(f"model {args.model}, batch {args.batch} x seq {args.seq}, threads "
          f"{args.threads or 'runtime default'}, {args.rounds} interleaved rounds\n")
    print("| backend | p50 ms (median of rounds) | range of round p50s | vs ort-cpu "
          "| compute precision | parity max abs | parity |")
    print("|---|---|---|---|---|---|---|")
    for name, values in p50s.items():
        result = last[name]
        if not values:
            print(f"| {name} | {result['status']}: {result['error']['message']} | | | | | |")
            continue
        median = statistics.median(values)
        parity = result.get("parity") or {}
        ratio = f"{median / base:.2f}x" if base else "-"
        print(f"| {name} | {median:.3f} | {min(values):.3f}-{max(values):.3f} | {ratio} "
              f"| {parity.get('compute_precision') or 'float32'} "
              f"| {parity.get('max_abs_error', float('nan')):.1e} "
              f"| {'pass' if parity.get('passed') else 'FAIL'} |")


if __name__ == "__main__":
    main()
