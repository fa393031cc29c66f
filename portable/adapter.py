"""The adapter contract: what every backend, in tree or from a vendor, implements.

An `Adapter` is cheap to construct and to import: vendor SDKs are imported inside
`probe()` and `load()`, never at module top. `probe()` either describes the device
or raises `BackendUnavailable(reason, hint)`, nothing else. `load()` returns a
`Session` that runs one ONNX model. The harness only ever talks to these classes,
so it never branches on which backend it drives.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from portable.errors import InvalidOption

#: (major, minor). A registry refuses an adapter built against another major.
API_VERSION: tuple[int, int] = (1, 0)

Dim = int | str | None
"""A dimension: a fixed size, a symbolic name (``"batch"``), or unknown (None)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str
    """numpy dtype name (``"float32"``, ``"int64"``, ``"bool"``, ...)."""


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    """The device this adapter runs on, as ``kind[:index]``: ``cpu``, ``cuda:0``, ``npu:0``."""
    name: str
    """A human name: the CPU model, the GPU product name."""
    runtime: Mapping[str, str] = field(default_factory=dict)
    """Runtime and driver versions, for example ``{"onnxruntime": "1.32.0"}``."""
    device_count: int = 1
    memory_bytes: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "name": self.name,
            "runtime": dict(self.runtime),
            "device_count": self.device_count,
            "memory_bytes": self.memory_bytes,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class SessionConfig:
    threads: int | None = None
    """Intra-op threads; None lets the runtime choose."""
    strict: bool = False
    """Refuse to run when any node would be placed on a device other than the one asked for."""


@dataclass(frozen=True)
class Capabilities:
    dtypes: tuple[str, ...]
    dynamic_shapes: bool = True
    device_resident_io: bool = False
    """Inputs and outputs can stay on the device between runs (the timed path skips host copies)."""
    supported_ops: frozenset[str] | None = None
    """ONNX op types the device can run, where the runtime can say; None when it cannot."""


@dataclass(frozen=True)
class Placement:
    """Where the nodes of a loaded model actually run: the answer to "did anything fall back?"."""

    requested: str
    """The device that was asked for (``cpu``, ``cuda:0``)."""
    nodes_by_device: Mapping[str, int]
    """Node count per device that ran them; ``{}`` when the runtime cannot say."""
    fallback_op_types: tuple[str, ...] = ()
    """Op types of nodes that ran somewhere other than `requested`."""
    source: str = "runtime"
    """How this was learned: ``profiler``, ``providers``, ``single-device``, ..."""

    @property
    def has_fallback(self) -> bool:
        return any(dev != self.requested for dev, n in self.nodes_by_device.items() if n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "nodes_by_device": dict(self.nodes_by_device),
            "fallback_op_types": list(self.fallback_op_types),
            "fallback": self.has_fallback,
            "source": self.source,
        }


class Session(abc.ABC):
    """One model loaded on one device."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    compute_precision: str | None = None
    """The float precision the device really computes in, when lower than the model's own
    (``"float16"`` under CANN's default precision mode, ``"bfloat16"`` on an OpenVINO bf16
    hint); None when it computes in the model's dtypes. Parity tolerance follows it."""

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once and return every output as a host numpy array."""

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """Return a step that runs the model on `feeds` for timing.

        Device backends override this to copy the inputs to the device once and
        keep outputs there (IO binding), so the timed step measures the device,
        not host transfers. The harness calls ``step(); synchronize()``.
        """
        return lambda: self.run(feeds)

    def synchronize(self) -> None:  # noqa: B027 - a no-op is right for synchronous runtimes
        """Block until queued device work is done."""

    @abc.abstractmethod
    def placement(self) -> Placement: ...

    def memory(self) -> dict[str, int]:
        """Device memory figures in bytes the runtime reports (e.g. ``device_peak``); {} if none."""
        return {}

    def close(self) -> None:  # noqa: B027 - default has nothing to free; must stay idempotent
        """Free the session. Calling it twice is harmless."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Option:
    """One adapter option. Values arrive as strings (``-o key=value``) and are parsed here."""

    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    choices: tuple[str, ...] | None = None


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def parse_non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {text!r}")
    return value


class Adapter(abc.ABC):
    """A backend. Subclasses set the class attributes and implement probe/load/capabilities."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    """Other names users may give (``cpu`` for ``ort-cpu``); declared here, not in a table."""
    install_hint: ClassVar[str] = ""
    """What to install when the runtime is missing (also the hint of `BackendUnavailable`)."""
    packages: ClassVar[tuple[str, ...]] = ()
    """Distributions whose versions a result records (``onnxruntime``, ``openvino``)."""
    api_version: ClassVar[tuple[int, int]] = API_VERSION
    experimental: ClassVar[bool] = False
    hidden: ClassVar[bool] = False
    """Hidden adapters (test fakes) are left out of listings unless asked for."""
    device_kind: ClassVar[str] = "cpu"
    option_spec: ClassVar[Mapping[str, Option]] = {}
    vendor_modules: ClassVar[tuple[str, ...]] = ()
    """Top-level modules of the vendor SDK; importing the adapter's module must not import them."""
    ray_resources: ClassVar[Mapping[str, float]] = {}
    """What a Ray task running this backend asks of its node besides one CPU (``{"GPU": 1}``,
    ``{"NPU": 1}``): Ray's own accelerator names where Ray has one, else a custom resource
    the cluster's nodes advertise (`ray start --resources`). Empty: any node will do."""

    def __init__(self, options: Mapping[str, str] | None = None):
        self.options: dict[str, Any] = self._parse_options(dict(options or {}))

    @classmethod
    def _parse_options(cls, raw: dict[str, str]) -> dict[str, Any]:
        unknown = sorted(set(raw) - set(cls.option_spec))
        if unknown:
            valid = ", ".join(sorted(cls.option_spec)) or "(none)"
            raise InvalidOption(cls.name, f"unknown option(s) {', '.join(unknown)}; valid: {valid}")
        parsed: dict[str, Any] = {}
        for key, spec in cls.option_spec.items():
            if key not in raw:
                parsed[key] = spec.default
                continue
            text = raw[key]
            if spec.choices is not None and text not in spec.choices:
                raise InvalidOption(
                    cls.name, f"option {key}={text!r}: choose one of {', '.join(spec.choices)}"
                )
            try:
                parsed[key] = spec.parse(text)
            except (ValueError, TypeError) as exc:
                raise InvalidOption(cls.name, f"option {key}={text!r}: {exc}") from None
        return parsed

    @property
    def default_strict(self) -> bool:
        """Whether a fallback is an error even without --strict (accelerator adapters say yes)."""
        return False

    @abc.abstractmethod
    def probe(self) -> DeviceInfo:
        """Describe the device, or raise BackendUnavailable(reason, hint). Cheap."""

    @abc.abstractmethod
    def load(self, model_path: Path, config: SessionConfig) -> Session:
        """Load `model_path` (an ONNX file) and return a ready session."""

    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...
