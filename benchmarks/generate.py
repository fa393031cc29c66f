"""Generation with a KV cache on the reference MoE: does the cache work, and what does the
loop cost? Sessions are driven directly (no CLI), same threads for every row, in
interleaved rounds so drift on a shared machine lands on every row.

1. a decode step with the cache at context 512 vs the no-cache forward of 513 tokens
   (target: >= 20x faster);
2. TPOT at context 1024 / TPOT at context 32 (target: <= 1.5);
3. portable's generation loop (ort-cpu: plain `run()`; and the IO-binding cache step an
   ORT device stack uses, with CPU memory as the device) vs a bare ONNX Runtime loop
   that feeds present -> past itself: TPOT p50 ratio (target: <= 1.03);
4. ort-cpu vs openvino vs torch eager: TTFT and TPOT p50, token_match against torch eager.

    .venv/bin/python benchmarks/generate.py --rounds 5             # moe-small, 2 threads
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from portable import registry
from portable.adapter import SessionConfig
from portable.generation import DecoderSpec, GenerationRun, generate, token_parity
from portable.kit.ort import CPU_PROVIDER, IoDevice, OrtSession
from portable.models.config import get_preset
from portable.models.export import ensure_exported


def bare_ort_loop(sess: ort.InferenceSession, prompt: np.ndarray, gen_len: int,
                  spec: DecoderSpec) -> list[int]:
    """Per-step ns of the simplest correct loop: run(), argmax, present -> past."""
    b, p = prompt.shape
    names = [o.name for o in sess.get_outputs()]
    presents = [(past, names.index(present)) for present, past in spec.present_to_past().items()]
    logits_at = names.index("logits")
    empty = np.zeros((b, spec.kv_heads, 0, spec.head_dim), np.float32)
    feeds = {"input_ids": prompt, "attention_mask": np.ones((b, p), np.int64),
             "position_ids": np.arange(p, dtype=np.int64)[None].repeat(b, 0),
             **{name: empty for pair in spec.past for name in pair}}
    clock, samples = time.perf_counter_ns, []
    for j in range(gen_len):
        t0 = clock()
        out = sess.run(names, feeds)
        samples.append(clock() - t0)
        token = out[logits_at][:, -1].argmax(-1)[:, None]
        feeds = {"input_ids": token, "attention_mask": np.ones((b, p + j + 1), np.int64),
                 "position_ids": np.full((b, 1), p + j, np.int64),
                 **{name: out[k] for name, k in presents}}
    return samples


def p50_ms(samples: list[int]) -> float:
    return statistics.median(samples) / 1e6


def tpot(runs: list[GenerationRun]) -> float:
    return p50_ms([int(ns) for r in runs for ns in r.step_ns[1:]])


def prompt_of(config, batch: int, length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, config.vocab_size, (batch, length),
                                                dtype=np.int64)


def rounds(n: int, rows: dict[str, Callable[[], object]]) -> dict[str, list]:
    """Run every row once per round, the order rotating each round."""
    names, out = list(rows), {name: [] for name in rows}
    for r in range(n):
        for name in names[r % len(names):] + names[:r % len(names)]:
            out[name].append(rows[name]())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="moe-small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gen-len", type=int, default=17, help="tokens per generation")
    args = parser.parse_args(argv)
    config = get_preset(args.preset)
    cached = ensure_exported(config, with_past=True)
    plain = ensure_exported(config)
    sc = SessionConfig(threads=args.threads)
    cpu = registry.create("ort-cpu").load(cached.onnx_path, sc)
    nocache = registry.create("ort-cpu").load(plain.onnx_path, sc)
    spec = DecoderSpec.of(cpu)
    g = args.gen_len
    print(f"# {args.preset}, {args.threads} threads, {args.rounds} rounds, gen_len {g}, "
          f"batch 1 unless said\n")

    # 1 and 2: the cache works, decode cost is flat in the context.
    ids512 = prompt_of(config, 1, 513)
    res = rounds(args.rounds, {
        "decode@512": lambda: generate(cpu, ids512[:, :512], g, spec),
        "forward513": lambda: _timed(lambda: nocache.run({"input_ids": ids512})),
        "decode@32": lambda: generate(cpu, prompt_of(config, 1, 32), g, spec),
        "decode@1024": lambda: generate(cpu, prompt_of(config, 1, 1024), g, spec),
    })
    step512, full513 = tpot(res["decode@512"]), p50_ms(res["forward513"])
    t32, t1024 = tpot(res["decode@32"]), tpot(res["decode@1024"])
    print("| figure | value | target |\n|---|---|---|")
    print(f"| no-cache forward of 513 tokens, p50 | {full513:.2f} ms | |")
    print(f"| decode step at context 512 (TPOT p50) | {step512:.3f} ms | |")
    print(f"| speed-up of the cached step | {full513 / step512:.1f}x | >= 20x |")
    print(f"| TPOT p50 at context 32 / 1024 | {t32:.3f} / {t1024:.3f} ms | |")
    print(f"| TPOT(1024) / TPOT(32) | {t1024 / t32:.2f} | <= 1.5 |")

    # 3: the loop's own cost against a bare ORT loop, same model, prompt and threads.
    prompt = prompt_of(config, 1, 64)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    bare = ort.InferenceSession(str(cached.onnx_path), opts, providers=[CPU_PROVIDER])
    bound = OrtSession(ort.InferenceSession(str(cached.onnx_path), opts, providers=[CPU_PROVIDER]),
                       "cpu", (CPU_PROVIDER,), IoDevice("cpu"), ort)

    res = rounds(args.rounds, {
        "bare": lambda: bare_ort_loop(bare, prompt, 2 * g, spec),
        "bound": lambda: generate(bound, prompt, 2 * g, spec),
        "host": lambda: generate(cpu, prompt, 2 * g, spec),
    })
    bare_tpot = p50_ms([ns for run in res["bare"] for ns in run[1:]])
    print(f"| bare ORT loop TPOT p50 (prompt 64) | {bare_tpot:.3f} ms | |")
    for name, label in (("bound", "IO binding (bind_cache)"), ("host", "plain run()")):
        ratio = tpot(res[name]) / bare_tpot
        print(f"| portable loop, {label}: TPOT p50 / bare | {ratio:.3f} | <= 1.03 |")

    # 4: the three CPU stacks on one prompt; token_match against torch eager.
    sessions = {"ort-cpu": cpu, **{name: registry.create(name).load(cached.onnx_path, sc)
                                   for name in ("openvino", "torch")}}
    res = rounds(args.rounds, {name: (lambda s=s: generate(s, prompt, 2 * g))
                               for name, s in sessions.items()})
    reference = res["torch"][0]
    print("\n| backend | TTFT p50 (prompt 64) | TPOT p50 | token_match vs torch eager |")
    print("|---|---|---|---|")
    for name, runs in res.items():
        parity = token_parity(runs[0].token_ids, reference.token_ids, reference.margins, 1e-4)
        ttft = p50_ms([int(r.step_ns[0]) for r in runs])
        print(f"| {name} | {ttft:.2f} ms | {tpot(runs):.3f} ms | {parity['token_match']:.2f} |")
    return 0


def _timed(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


if __name__ == "__main__":
    sys.exit(main())
