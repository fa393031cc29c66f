"""Rooflines: the machine's memory bandwidth and matmul peak, and a model's bytes and FLOPs.

`portable calibrate` measures the machine once (numpy, so BLAS threads and memory
as any CPU runtime would see them) and caches the figures per machine. A result's
roofline fraction is the roofline time bound, ``max(FLOPs / peak, bytes / bandwidth)``,
over its measured p50: 1.0 would be a run at the machine's limit.

The model's counts come from the reference config, not from the ONNX graph, and
are estimates: 2 FLOPs per active parameter per token (the embedding lookup is
counted as a matmul, a small overcount) plus attention's ``4 · seq² · hidden`` per
layer and sample; bytes are the float32 weights a run must read at least once
(no more than every parameter, no more than what the tokens activate).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from portable import environment
from portable.results import write_text_atomic

CALIBRATION_VERSION = 1
BYTES_PER_PARAM = 4  # float32 weights, as exported


def cache_path() -> Path:
    """In the model cache folder (`$PORTABLE_CACHE`, else the user's cache)."""
    from portable.models.export import default_cache_dir

    return default_cache_dir() / "calibration.json"


def machine_key() -> dict[str, Any]:
    env = environment.capture()
    return {"cpu": env["cpu"], "cores": env["cores"], "machine": env["machine"],
            "numpy": np.__version__, "version": CALIBRATION_VERSION}


def _best_seconds(work: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes/s of a large array copy (one read and one write per byte), best of `repeats`."""
    source = np.ones(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    seconds = _best_seconds(lambda: np.copyto(target, source), repeats)
    return 2 * source.nbytes / seconds


def measure_matmul(n: int = 2048, repeats: int = 5) -> float:
    """float32 FLOP/s of an n×n matmul, best of `repeats`."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b  # warm the BLAS threads
    return 2 * n**3 / _best_seconds(lambda: a @ b, repeats)


def calibrate() -> dict[str, Any]:
    return {"machine": machine_key(), "bandwidth_bytes_per_s": measure_bandwidth(),
            "matmul_flops_per_s": measure_matmul()}


def load_calibration(path: Path | None = None) -> dict[str, Any] | None:
    """This machine's cached calibration; None if missing, unreadable or another machine's."""
    try:
        cached = json.loads((path or cache_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("machine") != machine_key():
        return None
    return cached


def save_calibration(figures: dict[str, Any], path: Path | None = None) -> Path:
    return write_text_atomic(path or cache_path(), json.dumps(figures, indent=1) + "\n")


def model_cost(config: Mapping[str, Any], batch: int, seq: int) -> dict[str, float]:
    """Estimated FLOPs and weight bytes of one forward pass of the reference MoE."""
    from portable.models.config import MoEConfig, active_params_per_token, total_params

    cfg = MoEConfig.from_dict(dict(config))
    tokens = batch * seq
    flops = 2 * active_params_per_token(cfg) * tokens + 4 * cfg.layers * batch * seq**2 * cfg.hidden
    params_read = min(total_params(cfg), active_params_per_token(cfg) * tokens)
    return {"flops": float(flops), "bytes": float(params_read * BYTES_PER_PARAM)}


def roofline(cost: Mapping[str, float], calibration: Mapping[str, Any],
             p50_ms: float) -> dict[str, Any]:
    compute_s = cost["flops"] / calibration["matmul_flops_per_s"]
    memory_s = cost["bytes"] / calibration["bandwidth_bytes_per_s"]
    bound_s = max(compute_s, memory_s)
    return {
        **cost,
        "arithmetic_intensity": cost["flops"] / cost["bytes"] if cost["bytes"] else None,
        "bound": "compute" if compute_s >= memory_s else "memory",
        "roofline_ms": bound_s * 1e3,
        "fraction": bound_s * 1e3 / p50_ms if p50_ms > 0 else None,
    }


def annotate(cells: list[dict[str, Any]], config: Mapping[str, Any] | None) -> str | None:
    """Add `roofline` to each ok latency/throughput cell of a reference model.

    Returns why no cell got one, when that is worth telling the user.
    """
    if not config:
        return None  # a user's ONNX file: no config to count bytes and FLOPs from
    calibration = load_calibration()
    if calibration is None:
        return "no roofline figures: run `portable calibrate` once on this machine"
    for cell in cells:
        if cell["status"] == "ok" and cell["scenario"] != "server":  # server p50 has queueing
            cost = model_cost(config, cell["batch"], cell["seq"])
            cell["roofline"] = roofline(cost, calibration, cell["latency"]["p50"])
    return None
