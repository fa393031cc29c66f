"""A fake device for testing the harness: no runtime, outputs of the right shape, instantly.

Hidden from users unless asked for. It reads the ONNX signature and returns zeros,
so every part of the harness (timing, statistics, results, CLI) runs without a
real stack. `delay_ms` makes it take a known time; `fail` makes it raise on load
or on run, to test how failures are reported, or segfault (on load or run) or hang
on run, to test isolation across the process boundary (a monkeypatch cannot reach
the spawned child, an option can). `static_shapes` makes it a compile-ahead stack
(contract 1.1): it refuses feeds of a shape it was not specialized for, and keeps a
marker per model digest and shape set in its artifact folder, so a second run hits.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from portable.adapter import (
    Adapter,
    Capabilities,
    DeviceInfo,
    Option,
    Placement,
    Session,
    SessionConfig,
    TensorSpec,
    parse_bool,
)
from portable.errors import ModelError, UnsupportedModel
from portable.signature import read_signature


class NullSession(Session):
    def __init__(self, inputs, outputs, config: SessionConfig, options: Mapping[str, Any]):
        self.inputs = inputs
        self.outputs = outputs
        self._delay_s = options["delay_ms"] / 1000
        self._fail = options["fail"]
        self._options = options
        self._config = config
        self._dims: dict[str, int] = {}
        self._specialized: set[tuple] = set()

    def specialize(self, inputs: Sequence[TensorSpec]) -> str:
        shapes = tuple((spec.name, spec.shape) for spec in inputs)
        self._specialized.add(shapes)
        if self._config.artifact_dir is None:
            return "none"
        key = hashlib.sha256(f"{self._config.model_sha256}{shapes}".encode()).hexdigest()
        marker = self._config.artifact_dir / key
        if marker.exists():
            return "hit"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return "miss"

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._fail == "run":
            raise RuntimeError("null backend asked to fail on run")
        if self._fail == "unsupported_run":
            raise UnsupportedModel("null backend asked to call this model unsupported on run")
        shapes = tuple((name, tuple(value.shape)) for name, value in feeds.items())
        if self._options["static_shapes"] and shapes not in self._specialized:
            raise RuntimeError(f"null backend: not specialized for {dict(shapes)}")
        if self._fail == "segfault":
            ctypes.string_at(0)  # a real SIGSEGV, as a broken vendor runtime would cause
        if self._fail == "hang":
            threading.Event().wait()
        for spec in self.inputs:
            for dim, size in zip(spec.shape, feeds[spec.name].shape, strict=False):
                if isinstance(dim, str):
                    self._dims[dim] = size
        if self._delay_s:
            time.sleep(self._delay_s)
        return {
            spec.name: np.zeros(
                tuple(d if isinstance(d, int) else self._dims.get(str(d), 1) for d in spec.shape),
                dtype=np.dtype(spec.dtype),
            )
            for spec in self.outputs
        }

    def placement(self) -> Placement:
        time.sleep(self._options["placement_delay_ms"] / 1000)
        if self._options["fallback"]:
            return Placement("null", {"null": 2, "cpu": 1}, ("Gather",), source="fake device")
        return Placement("null", {}, source="fake device")


class NullAdapter(Adapter):
    name = "null"
    hidden = True
    device_kind = "null"
    option_spec = {
        "delay_ms": Option("sleep this long in every run", float, 0.0),
        "fail": Option("fail on purpose", str, "never",
                       choices=("never", "load", "run", "segfault", "hang", "segfault_load",
                                "unsupported_run")),
        "static_shapes": Option("compile ahead for fixed shapes (Session.specialize)",
                                parse_bool, False),
        "probe_delay_ms": Option("sleep this long in probe()", float, 0.0),
        "placement_delay_ms": Option("sleep this long in placement()", float, 0.0),
        "fallback": Option("report a node that ran on the CPU", parse_bool, False),
    }

    def probe(self) -> DeviceInfo:
        time.sleep(self.options["probe_delay_ms"] / 1000)
        return DeviceInfo("null", "fake device for tests", runtime={})

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float32", "int64"),
                            dynamic_shapes=not self.options["static_shapes"])

    def load(self, model_path: Path, config: SessionConfig) -> NullSession:
        if self.options["fail"] == "load":
            raise ModelError("null backend asked to fail on load")
        if self.options["fail"] == "segfault_load":
            ctypes.string_at(0)
        sig = read_signature(model_path)
        return NullSession(sig.inputs, sig.outputs, config, self.options)
