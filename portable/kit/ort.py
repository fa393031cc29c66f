"""A base for adapters whose stack is an ONNX Runtime execution provider.

ONNX Runtime takes an ordered provider list with string options and, when the
asked-for provider cannot start, quietly runs everything on CPU. `OrtAdapter`
asks for exactly one provider, reads back what the session really uses and
refuses to report a CPU run under another device's name. A stack that is an ORT
execution provider subclasses it with its provider name, options and probe.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
    parse_non_negative_int,
)
from portable.errors import (
    BackendUnavailable,
    InputError,
    PlacementError,
    UnsupportedModel,
)
from portable.kit.probing import VendorRuntime
from portable.runtimelog import ort_severity

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"

#: Element types ORT's Python API passes as numpy arrays.
_NUMPY_PASSABLE = frozenset({
    "float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool", "str"})

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}

_OPT_LEVELS = ("disable", "basic", "extended", "all")

#: Session options every ORT-based adapter accepts.
SESSION_OPTIONS: Mapping[str, Option] = {
    "intra_op_threads": Option(
        "threads inside one operator (0 = runtime default; --threads sets it too)",
        parse_non_negative_int,
    ),
    "inter_op_threads": Option("threads across independent operators", parse_non_negative_int),
    "graph_optimization_level": Option(
        "ONNX Runtime graph optimizations", str, "all", choices=_OPT_LEVELS
    ),
}


#: Options of every adapter whose provider is not the CPU one.
ACCELERATOR_OPTIONS: Mapping[str, Option] = {
    "allow_fallback": Option(
        "let nodes the device cannot run fall back to CPU (recorded in placement) "
        "instead of failing",
        parse_bool,
        False,
    ),
}


def parse_flag(text: str) -> str:
    """A boolean provider option as ORT's provider options take it: "1" or "0"."""
    return "1" if parse_bool(text) else "0"


def import_onnxruntime(hint: str) -> Any:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime cannot be imported: {exc}", hint) from None


def _specs(args: list[Any]) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(a.name, tuple(a.shape), _ORT_TYPES.get(a.type, a.type)) for a in args
    )


@dataclass(frozen=True)
class IoDevice:
    """Where IO binding keeps inputs and outputs: an OrtValue device name and index."""

    kind: str
    index: int = 0


class OrtSession(Session):
    """An ORT session whose placement is read per node from ORT's own profiler.

    Profiling is on from session creation and covers the first `run()` only: it ends
    when `placement()` reads it, at `prepare()`, or at the start of the second `run()`,
    so it never covers a timed loop, whether or not the caller asks for `placement()`,
    and reading the profile is never part of the first run's time.
    """

    def __init__(
        self,
        ort_session: Any,
        requested_device: str,
        providers: tuple[str, ...],
        io_device: IoDevice | None = None,
        ort: Any = None,
        compute_precision: str | None = None,
        memory_reader: Callable[[], dict[str, int]] | None = None,
    ):
        self._sess = ort_session
        self._requested = requested_device
        self._providers = providers
        """The providers that run on `requested_device` (the asked-for one first)."""
        self._io_device = io_device
        self._ort = ort
        self._binding: Any = None
        self._placement: Placement | None = None
        self._ran = False
        self.compute_precision = compute_precision
        self._memory_reader = memory_reader
        self.inputs = _specs(ort_session.get_inputs())
        self.outputs = _specs(ort_session.get_outputs())
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._sess is None:
            raise RuntimeError("session is closed")
        if self._ran:
            self.placement()  # the first run was profiled: read it and stop profiling
        try:
            values = self._sess.run(self._output_names, dict(feeds))
        except Exception as exc:
            if type(exc).__name__ in {"InvalidArgument", "Fail"} and "input" in str(exc).lower():
                raise InputError(f"onnxruntime rejected the inputs: {exc}") from None
            raise
        self._ran = True
        return dict(zip(self._output_names, values, strict=True))

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """With an IO device: copy the inputs there once and keep outputs there (IO binding)."""
        self.placement()  # never profile the timed step
        if self._io_device is None:
            return super().prepare(feeds)
        device = self._io_device
        binding = self._sess.io_binding()
        for name, value in feeds.items():
            on_device = self._ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(value), device.kind, device.index
            )
            binding.bind_ortvalue_input(name, on_device)
        for name in self._output_names:
            binding.bind_output(name, device.kind, device.index)
        self._binding = binding
        sess = self._sess
        return lambda: sess.run_with_iobinding(binding)

    def bind_cache(self, present_to_past: Mapping[str, str],
                   fetch: Sequence[str]) -> OrtCacheStep | None:
        """With an IO device: presents stay there as OrtValues and are bound as the next
        step's past; only `fetch` comes to the host. Without one (the CPU provider) None:
        plain `run()` was faster on CPU (benchmarks/results/generate.md)."""
        if self._io_device is None:
            return None
        self.placement()  # never profile a timed step
        if self._sess is None:
            raise RuntimeError("session is closed")
        step = OrtCacheStep(self._sess, self._io_device, present_to_past, fetch)
        self._binding = step.binding
        return step

    def synchronize(self) -> None:
        if self._binding is not None:
            self._binding.synchronize_outputs()

    def memory(self) -> dict[str, int]:
        return self._memory_reader() if self._memory_reader else {}

    def placement(self) -> Placement:
        if self._placement is None:
            self._placement = self._read_placement()
        return self._placement

    def _device_of(self, provider: str) -> str:
        if provider in self._providers:
            return self._requested
        return "cpu" if provider == CPU_PROVIDER else provider

    def _read_placement(self) -> Placement:
        nodes = self._profiled_nodes()
        if not nodes:
            # Nothing profiled (no run yet): the session's provider list is all there is.
            providers = self._sess.get_providers()
            return Placement(self._requested, {}, source="providers: " + ",".join(providers))
        by_device: dict[str, int] = {}
        fallback_ops: set[str] = set()
        for provider, op_type in nodes.values():
            device = self._device_of(provider)
            by_device[device] = by_device.get(device, 0) + 1
            if device != self._requested:
                fallback_ops.add(op_type)
        return Placement(self._requested, by_device, tuple(sorted(fallback_ops)), "profiler")

    def _profiled_nodes(self) -> dict[str, tuple[str, str]]:
        """node name -> (provider, op type) of every node the profiled runs executed."""
        path = self._end_profiling()
        if not path:
            return {}
        try:
            with open(path, encoding="utf-8") as fh:
                events = json.load(fh)
        except (OSError, ValueError) as exc:
            log.warning("could not read ORT's profile %s: %s", path, exc)
            return {}
        finally:
            with contextlib.suppress(OSError):
                os.remove(path)
        nodes = {}
        for event in events:
            args = event.get("args") or {}
            if event.get("cat") == "Node" and "provider" in args:
                name = event["name"].removesuffix("_kernel_time")
                nodes[name] = (args["provider"], args.get("op_name", "?"))
        return nodes

    def _end_profiling(self) -> str:
        """Stop ORT's profiler; the path of its file ("" when it was already stopped)."""
        return self._sess.end_profiling() if self._sess is not None else ""

    def close(self) -> None:
        path = self._end_profiling()
        if path:
            with contextlib.suppress(OSError):
                os.remove(path)
        self._sess = None
        self._binding = None


class OrtCacheStep:
    """A `CacheStep` over one IO binding: host feeds are bound each call, presents are
    bound to `device` and rebound as the past of the next call, never copied to the host."""

    def __init__(self, sess: Any, device: IoDevice, present_to_past: Mapping[str, str],
                 fetch: Sequence[str]):
        self._sess = sess
        self._device = device
        self._map = dict(present_to_past)
        self._fetch = tuple(fetch)
        self.binding = sess.io_binding()

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        binding, device = self.binding, self._device
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.clear_binding_outputs()
        for name in self._fetch:
            binding.bind_output(name)  # host memory
        for name in self._map:
            binding.bind_output(name, device.kind, device.index)
        self._sess.run_with_iobinding(binding)
        values = dict(zip((*self._fetch, *self._map), binding.get_outputs(), strict=True))
        for present, past in self._map.items():
            binding.bind_ortvalue_input(past, values[present])
        return {name: values[name].numpy() for name in self._fetch}


class OrtAdapter(Adapter):
    """Subclasses set `provider`, `device_kind`, `install_hint` and any `provider_option_spec`."""

    provider: ClassVar[str]
    install_hint: ClassVar[str] = "pip install onnxruntime"
    packages: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    provider_option_spec: ClassVar[Mapping[str, Option]] = {}
    runtime: ClassVar[VendorRuntime | None] = None
    """The driver and libraries the provider needs beyond the wheel; checked by probe()."""
    same_device_providers: ClassVar[tuple[str, ...]] = ()
    """Further providers on the same device, after `provider` (TensorRT hands what it cannot
    build to CUDA); they get the ``device_id`` option too. Nodes they run are not fallback."""
    io_binding_device: ClassVar[str | None] = None
    """OrtValue device name (``"cuda"``) under which timed runs keep IO on the device."""
    vendor_modules = ("onnxruntime",)
    _device_info: DeviceInfo | None = None
    """What `probe()` found; `load()` reuses it instead of probing again."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        accelerator = getattr(cls, "provider", CPU_PROVIDER) != CPU_PROVIDER
        cls.option_spec = {
            **SESSION_OPTIONS,
            **(ACCELERATOR_OPTIONS if accelerator else {}),
            **cls.provider_option_spec,
        }

    @property
    def default_strict(self) -> bool:
        return self.provider != CPU_PROVIDER and not self.options.get("allow_fallback")

    # -- hooks for subclasses -------------------------------------------------------------
    def device(self) -> str:
        """``kind:index`` when the provider takes a device_id option, else the kind."""
        index = self.options.get("device_id")
        return self.device_kind if index is None else f"{self.device_kind}:{index}"

    def compute_precision(self) -> str | None:
        """The float precision the provider computes in when it is lower than the model's."""
        return None

    def device_memory(self) -> dict[str, int]:
        """Device memory figures in bytes, where the stack can report them."""
        return {}

    def io_device(self) -> IoDevice | None:
        if self.io_binding_device is None:
            return None
        return IoDevice(self.io_binding_device, self.options.get("device_id") or 0)

    def provider_options(self) -> dict[str, str]:
        """The provider's options as ONNX Runtime wants them: a str -> str map."""
        return {
            key: str(value)
            for key, value in self.options.items()
            if key in self.provider_option_spec and value is not None
        }

    def device_info(self, ort: Any) -> DeviceInfo:
        return DeviceInfo(self.device(), self.provider, runtime={"onnxruntime": ort.__version__})

    # -- the contract ---------------------------------------------------------------------
    def probe(self) -> DeviceInfo:
        if self._device_info is None:
            self._device_info = self._probe()
        return self._device_info

    def _probe(self) -> DeviceInfo:
        ort = import_onnxruntime(self.install_hint)
        available = ort.get_available_providers()
        gaps = [] if self.runtime is None else self.runtime.missing()
        if self.provider not in available:
            gaps.insert(0, f"onnxruntime {ort.__version__} has no {self.provider} "
                           f"(available: {', '.join(available)})")
        if gaps:
            raise BackendUnavailable("; ".join(gaps), self.install_hint)
        return self.device_info(ort)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float32", "float16", "float64", "int8", "int32", "int64", "uint8", "bool"),
            dynamic_shapes=True,
            device_resident_io=self.io_binding_device is not None,
            supported_ops=kernel_ops(self.provider),
        )

    def session_options(self, ort: Any, strict: bool, threads: int | None) -> Any:
        so = ort.SessionOptions()
        threads = self.options.get("intra_op_threads") or threads
        if threads:
            so.intra_op_num_threads = threads
        if self.options.get("inter_op_threads"):
            so.inter_op_num_threads = self.options["inter_op_threads"]
        level = self.options.get("graph_optimization_level") or "all"
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        if strict and self.provider != CPU_PROVIDER:
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        so.log_severity_level = ort_severity()
        # Per-node placement comes from the profiler (first run only; see OrtSession).
        so.enable_profiling = True
        # ORT appends only a timestamp: make the prefix unique per session.
        so.profile_file_prefix = os.path.join(
            tempfile.gettempdir(), f"portable-{self.name}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        )
        return so

    def load(self, model_path: Path, config: SessionConfig) -> OrtSession:
        ort = import_onnxruntime(self.install_hint)
        ort.set_default_logger_severity(ort_severity())
        self.probe()
        strict = config.strict or self.default_strict
        so = self.session_options(ort, strict, config.threads)
        try:
            sess = ort.InferenceSession(
                str(model_path),
                sess_options=so,
                providers=self.provider_list(),
            )
        except Exception as exc:
            # A session that failed to start may already have opened its profile file.
            for leftover in glob.glob(glob.escape(so.profile_file_prefix) + "*.json"):
                with contextlib.suppress(OSError):
                    os.remove(leftover)
            message = f"{type(exc).__name__}: {exc}".strip()
            if strict and "fallback" in message.lower():
                raise PlacementError(
                    f"{self.name}: strict placement refused a fallback to CPU "
                    f"(-o allow_fallback=true to allow it): {message}"
                ) from None
            # The ONNX checker passed in the parent: a model onnxruntime refuses (an opset,
            # type or op it lacks) is one this backend does not support, not a crash.
            types = _kernel_types(model_path, message) if (
                type(exc).__name__ == "NotImplemented"
                or "not a registered function/op" in message) else ""
            raise UnsupportedModel(
                f"{self.name} cannot load {model_path}: {message}{types}") from None
        effective = sess.get_providers()
        if not effective or effective[0] != self.provider:
            OrtSession(sess, self.device(), self.session_providers()).close()
            raise BackendUnavailable(
                f"onnxruntime was asked for {self.provider} but runs {effective}",
                self.install_hint,
            )
        session = OrtSession(
            sess, self.device(), self.session_providers(), self.io_device(), ort,
            self.compute_precision(), self.device_memory,
        )
        session.threads = so.intra_op_num_threads or None
        odd = [f"{t.name} ({t.dtype})" for t in session.inputs + session.outputs
               if t.dtype not in _NUMPY_PASSABLE]
        if odd:
            session.close()
            raise UnsupportedModel(
                f"{self.name}: onnxruntime's Python API cannot pass these values as numpy "
                f"arrays: {', '.join(odd)}"
            )
        return session

    def session_providers(self) -> tuple[str, ...]:
        return (self.provider, *self.same_device_providers)

    def provider_list(self) -> list[tuple[str, dict[str, str]]]:
        """What InferenceSession gets: our provider with its options, then same-device ones."""
        options = self.provider_options()
        shared = {key: options[key] for key in ("device_id",) if key in options}
        return [(self.provider, options), *((p, shared) for p in self.same_device_providers)]


_MISSING_KERNEL = re.compile(r"implementation for (\w+)\(\d+\) node with name '([^']*)'")


def _kernel_types(model_path: Path, message: str) -> str:
    """' (op X with input types ...)' for ORT's "Could not find an implementation" error."""
    match = _MISSING_KERNEL.search(message)
    if not match:
        return ""
    import onnx

    from portable.modelsource import all_graphs

    op, node_name = match.groups()
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # the message without types is still the answer
        return ""
    types: dict[str, int] = {}
    nodes = []
    for graph in all_graphs(model.graph):
        types.update({t.name: t.data_type for t in graph.initializer})
        types.update({v.name: v.type.tensor_type.elem_type
                      for v in (*graph.input, *graph.output, *graph.value_info)})
        nodes += [n for n in graph.node if n.name == node_name]
    names = [onnx.TensorProto.DataType.Name(types[x]).lower() for x in
             (nodes[0].input if nodes else []) if types.get(x)]
    return f" (no {op} kernel for input types {', '.join(names)})" if names else ""


@functools.cache
def kernel_ops(provider: str) -> frozenset[str] | None:
    """Op types that have a kernel for `provider` in this onnxruntime build (any domain/opset).

    None when onnxruntime is missing, lacks the provider, or cannot list its kernels.
    """
    try:
        ort = importlib.import_module("onnxruntime")
        if provider not in ort.get_available_providers():
            return None
        # ONNX Runtime has no public API that lists kernels; without this one the op
        # coverage is unknown (None), never guessed.
        kernels = importlib.import_module("onnxruntime.capi._pybind_state").get_all_opkernel_def()
    except (ImportError, AttributeError, RuntimeError):
        return None
    return frozenset(k.op_name for k in kernels if k.provider == provider)
