"""The adapter contract: what every backend, in tree or from a vendor, implements.

An `Adapter` is cheap to construct and to import: vendor SDKs are imported inside
`probe()` and `load()`, never at module top. `probe()` either describes the device
or raises `BackendUnavailable(reason, hint)`, nothing else. `load()` returns a
`Session` that runs one ONNX model. The harness only ever talks to these classes,
so it never branches on which backend it drives.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from portable.errors import InvalidOption

#: (major, minor). A registry refuses an adapter built against another major; a minor
#: version only adds optional fields and hooks, so a 1.0 adapter runs unchanged. 1.1:
#: `SessionConfig.inputs`, `artifact_dir`, `model_sha256`; `Session.specialize`
#: (compile-ahead stacks); `Session.bind_cache` (generation with a device-resident cache);
#: `Adapter.op_coverage` (per-model op coverage).
API_VERSION: tuple[int, int] = (1, 1)

#: What `Session.specialize` says about the compiled artifact it used.
ARTIFACT_CACHE_STATES = ("hit", "miss", "none")

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
    inputs: tuple[TensorSpec, ...] = ()
    """(1.1) The concrete shapes and dtypes the work item will feed first, resolved before
    `load()`; empty when the caller does not know them yet (a node test)."""
    artifact_dir: Path | None = None
    """(1.1) A folder this backend may keep compiled artifacts in across runs
    (``<PORTABLE_CACHE>/artifacts/<backend>/``); None: do not cache."""
    model_sha256: str | None = None
    """(1.1) sha256 of the model file, for an artifact cache key without re-reading it."""


@dataclass(frozen=True)
class Capabilities:
    dtypes: tuple[str, ...]
    dynamic_shapes: bool = True
    device_resident_io: bool = False
    """Inputs and outputs can stay on the device between runs (the timed path skips host copies)."""
    supported_ops: frozenset[str] | None = None
    """ONNX op types the device can run, where the runtime can say; None when it cannot."""


@dataclass(frozen=True)
class OpCoverage:
    """Which of one model's ops a device can run, as its runtime answers for that model."""

    ops: int
    """Nodes the runtime was asked about (in its own graph, after conversion)."""
    unsupported: tuple[str, ...] = ()
    """Op types it cannot run; empty when it can run them all."""
    source: str = "runtime"
    """Who answered, e.g. ``openvino query_model on CPU``."""


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
    """How this was learned. Per-node sources: ``profiler`` (a runtime profile names each
    node's device), ``providers`` (the runtime's provider list). ``single-device``: a
    whole-graph compiler (IREE, TensorRT, ATC) that produces one program for one device
    and has no per-node information; it reports every node on `requested`
    (``nodes_by_device={requested: node_count}``) and no fallback op types."""

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


class CacheStep(Protocol):
    """One generation's steps with the KV cache kept where the session keeps it.

    Returned by `Session.bind_cache`; a new one per generation. Each call runs the model
    once on `feeds` (the first call gets every input, including the empty past; later
    calls only the non-cache inputs: input_ids, attention_mask, position_ids), keeps the
    present outputs as the next call's past inputs, and returns host arrays of the
    outputs it was asked to fetch (the logits). The caller times ``step(feeds);
    session.synchronize()``.
    """

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Session(abc.ABC):
    """One model loaded on one device."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    compute_precision: str | None = None
    """The float precision the device really computes in, when lower than the model's own
    (``"float16"`` under CANN's default precision mode, ``"bfloat16"`` on an OpenVINO bf16
    hint); None when it computes in the model's dtypes. Parity tolerance follows it."""
    threads: int | None = None
    """Intra-op threads the runtime really uses, where it can say (recorded with results)."""

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once and return every output as a host numpy array."""

    def specialize(self, inputs: Sequence[TensorSpec]) -> str:
        """(1.1) Compile the model for these concrete input shapes before they run.

        Called by the harness, never by the adapter itself, only when the adapter's
        `Capabilities.dynamic_shapes` is False: once for the work item's shapes right
        after `load()`, then once per further shape set (the golden parity shapes)
        before feeds of that shape reach `run()`. The session keeps every shape set it
        was specialized for. Timed as ``compile_ms`` of that shape set. Returns whether
        the artifact came from the cache: ``"hit"``, ``"miss"`` or ``"none"`` (no cache).
        Raise `UnsupportedModel` when the stack cannot compile the model.
        """
        return "none"

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """Return a step that runs the model on `feeds` for timing.

        Device backends override this to copy the inputs to the device once and
        keep outputs there (IO binding), so the timed step measures the device,
        not host transfers. The harness calls ``step(); synchronize()``.
        """
        return lambda: self.run(feeds)

    def bind_cache(self, present_to_past: Mapping[str, str],
                   fetch: Sequence[str]) -> CacheStep | None:
        """Optional hook for generation: keep the KV cache on the device between steps.

        `present_to_past` maps each present output to the past input it feeds next step;
        `fetch` names the outputs the caller needs on the host. Device stacks return a
        `CacheStep` that binds the presents to device buffers and feeds them back without
        a host copy (ONNX Runtime: IO binding). The default None makes the generation
        loop keep the cache as host arrays and call `run()`.
        """
        return None

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
        """Load `model_path` (an ONNX file) and return a session.

        The file stays in place until the session's `close()` returns, wherever the kit
        calls an adapter, so a session may read it lazily (a compiler in `specialize`).
        """

    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    def op_coverage(self, model_path: Path) -> OpCoverage | None:
        """Which ops of this model the device can run, asked of the runtime for this model.

        Optional (API 1.1): for runtimes that answer per model (OpenVINO's
        `query_model`) rather than with a fixed op list (`capabilities`). None when
        the runtime cannot say; `portable inspect` then uses `capabilities()`.
        """
        return None
