"""A base for adapters whose stack is an ONNX Runtime execution provider.

ONNX Runtime takes an ordered provider list with string options and, when the
asked-for provider cannot start, quietly runs everything on CPU. `OrtAdapter`
asks for exactly one provider, reads back what the session really uses and
refuses to report a CPU run under another device's name. A stack that is an ORT
execution provider subclasses it with its provider name, options and probe.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Mapping
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
    parse_non_negative_int,
)
from portable.errors import (
    BackendUnavailable,
    InputError,
    ModelError,
    PlacementError,
    UnsupportedModel,
)

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"

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


def import_onnxruntime(hint: str) -> Any:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime cannot be imported: {exc}", hint) from None


def _specs(args: list[Any]) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(a.name, tuple(a.shape), _ORT_TYPES.get(a.type, a.type)) for a in args
    )


class OrtSession(Session):
    def __init__(self, ort_session: Any, requested_device: str, provider: str, node_count: int):
        self._sess = ort_session
        self._requested = requested_device
        self._provider = provider
        self._node_count = node_count
        self.inputs = _specs(ort_session.get_inputs())
        self.outputs = _specs(ort_session.get_outputs())
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._sess is None:
            raise RuntimeError("session is closed")
        try:
            values = self._sess.run(self._output_names, dict(feeds))
        except Exception as exc:
            if type(exc).__name__ in {"InvalidArgument", "Fail"} and "input" in str(exc).lower():
                raise InputError(f"onnxruntime rejected the inputs: {exc}") from None
            raise
        return dict(zip(self._output_names, values, strict=True))

    def placement(self) -> Placement:
        providers = self._sess.get_providers()
        if providers == [self._provider] or self._provider == CPU_PROVIDER:
            # The session holds only the asked-for provider (CPU needs no fallback):
            # every node runs there.
            return Placement(
                self._requested, {self._requested: self._node_count}, source="providers"
            )
        return Placement(self._requested, {}, source="providers: " + ",".join(providers))

    def close(self) -> None:
        self._sess = None


class OrtAdapter(Adapter):
    """Subclasses set `provider`, `device_kind`, `install_hint` and any `provider_option_spec`."""

    provider: ClassVar[str]
    install_hint: ClassVar[str] = "pip install onnxruntime"
    provider_option_spec: ClassVar[Mapping[str, Option]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.option_spec = {**SESSION_OPTIONS, **cls.provider_option_spec}

    # -- hooks for subclasses -------------------------------------------------------------
    def device(self) -> str:
        return self.device_kind

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
        ort = import_onnxruntime(self.install_hint)
        available = ort.get_available_providers()
        if self.provider not in available:
            raise BackendUnavailable(
                f"onnxruntime {ort.__version__} has no {self.provider} "
                f"(available: {', '.join(available)})",
                self.install_hint,
            )
        return self.device_info(ort)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float32", "float16", "float64", "int8", "int32", "int64", "uint8", "bool"),
            dynamic_shapes=True,
            supported_ops=kernel_ops(self.provider),
        )

    def session_options(self, ort: Any, config: SessionConfig) -> Any:
        so = ort.SessionOptions()
        threads = self.options.get("intra_op_threads") or config.threads
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
        if config.strict and self.provider != CPU_PROVIDER:
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        so.log_severity_level = 3
        return so

    def load(self, model_path: Path, config: SessionConfig) -> OrtSession:
        ort = import_onnxruntime(self.install_hint)
        self.probe()
        so = self.session_options(ort, config)
        try:
            sess = ort.InferenceSession(
                str(model_path),
                sess_options=so,
                providers=[(self.provider, self.provider_options())],
            )
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".strip()
            if config.strict and "fallback" in message.lower():
                raise PlacementError(f"{self.name}: --strict and {message}") from None
            raise ModelError(f"{self.name} could not load {model_path}: {message}") from None
        effective = sess.get_providers()
        if not effective or effective[0] != self.provider:
            raise BackendUnavailable(
                f"onnxruntime was asked for {self.provider} but runs {effective}",
                self.install_hint,
            )
        session = OrtSession(sess, self.device(), self.provider, _count_nodes(model_path))
        bf16 = [t.name for t in session.inputs + session.outputs if t.dtype == "bfloat16"]
        if bf16:
            raise UnsupportedModel(
                f"{self.name}: onnxruntime's Python API cannot pass bfloat16 tensors "
                f"({', '.join(bf16)}) as numpy arrays"
            )
        return session


@functools.cache
def kernel_ops(provider: str) -> frozenset[str] | None:
    """Op types that have a kernel for `provider` in this onnxruntime build (any domain/opset).

    None when onnxruntime is missing, lacks the provider, or cannot list its kernels.
    """
    try:
        ort = importlib.import_module("onnxruntime")
        if provider not in ort.get_available_providers():
            return None
        kernels = importlib.import_module("onnxruntime.capi._pybind_state").get_all_opkernel_def()
    except (ImportError, AttributeError, RuntimeError):
        return None
    return frozenset(k.op_name for k in kernels if k.provider == provider)


def _count_nodes(model_path: Path) -> int:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return len(model.graph.node)
