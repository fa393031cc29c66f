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

from portable import environment, reference
from portable.paths import cache_dir
from portable.records import CellResult
from portable.results import write_text_atomic

CALIBRATION_VERSION = 1
CALIBRATED_DEVICE = "cpu"
"""`portable calibrate` measures this machine's CPU (numpy); other devices are not covered."""


def cache_path() -> Path:
    """In the model cache folder (`$PORTABLE_CACHE`, else the user's cache)."""
    return cache_dir() / "calibration.json"


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


def annotate(results: list[CellResult], config: Mapping[str, Any] | None) -> str | None:
    """Add ``roofline`` to each ok latency/throughput result of a reference model.

    Only results that ran on the device the calibration measured (this machine's CPU,
    not a cluster node's) are annotated, and the roofline names that device. Returns
    why no result got one, when that is worth telling the user.
    """
    if not config:
        return None  # a user's ONNX file: no config to count bytes and FLOPs from
    calibration = load_calibration()
    if calibration is None:
        return "no roofline figures: run `portable calibrate` once on this machine"
    for result in results:
        on_device = (result.device is not None and result.device.device == CALIBRATED_DEVICE
                     and result.node is None)  # a cluster node is another machine
        if result.ok and on_device and "server" not in result.extras:  # server p50 queues
            cost = reference.cost(config, result.batch, result.seq)
            if cost is not None:
                result.extras["roofline"] = {
                    **roofline(cost, calibration, result.latency["p50"]),
                    "device": CALIBRATED_DEVICE,
                }
    return None
