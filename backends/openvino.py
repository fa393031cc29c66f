"""OpenVINO reading the ONNX file: the second real stack, on its CPU device here.

OpenVINO's CPU plugin computes in bf16 by default on CPUs with AVX-512 BF16 (or
AMX), which moved moe-tiny's logits by up to 0.46 and changed its chosen experts.
This adapter asks for f32 unless told otherwise, and reports the precision the
compiled model really uses so parity tolerance follows it. Placement comes from
`Core.query_model`, the plugin's own answer to "which ops can you run".
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from portable.adapter import (
    Adapter,
    Capabilities,
    DeviceInfo,
    OpCoverage,
    Option,
    Placement,
    Session,
    SessionConfig,
    parse_non_negative_int,
)
from portable.errors import BackendUnavailable, InputError, ModelError, UnsupportedModel
from portable.signature import read_signature

HINT = "pip install 'portable[openvino]'"

#: OpenVINO element type names -> numpy dtype names, for the effective inference precision.
_PRECISIONS = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}
_UNCONVERTED = re.compile(r"No conversion rule found for operations:\s*(.+)")


def _import_openvino() -> Any:
    try:
        return importlib.import_module("openvino")
    except ImportError as exc:
        raise BackendUnavailable(f"openvino cannot be imported: {exc}", HINT) from None


def port_indices(kind: str, names: Sequence[str], ports: Sequence[Any]) -> dict[str, int]:
    """Each tensor name -> the index of the OpenVINO port for it.

    A port carries every name its tensor has (``port.get_names()``), and OpenVINO
    moves names when it folds ops away: an Identity's output name joins its input's
    port, and a model whose only op is a Dropout loses its input's name. So a name
    is found among all of a port's names, and, when the counts agree, by position
    as the last resort. Raises ModelError, naming what the ports carry, otherwise.
    """
    found: dict[str, int] = {}
    for index, port in enumerate(ports):
        for name in sorted(port.get_names()):
            found.setdefault(name, index)
    mapping = {name: found[name] for name in names if name in found}
    taken = set(mapping.values())
    for position, name in enumerate(names):
        if name not in mapping and len(names) == len(ports) and position not in taken:
            mapping[name] = position
            taken.add(position)
    missing = [name for name in names if name not in mapping]
    if missing:
        carried = "; ".join(", ".join(sorted(p.get_names())) or "(unnamed)" for p in ports)
        raise ModelError(
            f"openvino: no {kind} port for {', '.join(map(repr, missing))}; "
            f"its {kind} ports carry the names: {carried}"
        )
    return mapping


class OpenVinoSession(Session):
    def __init__(self, compiled: Any, signature: Any, placement: Placement, precision: str):
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._placement = placement
        self.inputs = signature.inputs
        self.outputs = signature.outputs
        self.compute_precision = None if precision == "float32" else precision
        self._input_ports = port_indices("input", [s.name for s in self.inputs], compiled.inputs)
        self._output_ports = port_indices(
            "output", [s.name for s in self.outputs], compiled.outputs)

    def _ports_of(self, feeds: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
        unknown = [name for name in feeds if name not in self._input_ports]
        if unknown:
            raise InputError(
                f"openvino cannot feed {', '.join(map(repr, unknown))}: OpenVINO turns an input "
                "that has an initializer into a constant; the model's fed inputs are "
                + ", ".join(self._input_ports)
            )
        # ascontiguousarray would turn 0-d arrays into 1-d ones.
        return {self._input_ports[name]: np.require(value, requirements="C")
                for name, value in feeds.items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._request is None:
            raise RuntimeError("session is closed")
        ports = self._ports_of(feeds)
        try:
            results = self._request.infer(ports)
        except RuntimeError as exc:
            raise InputError(f"openvino rejected the inputs: {exc}") from None
        # infer() returns views into the request's buffers: copy, the next run reuses them.
        return {name: np.array(results[index]) for name, index in self._output_ports.items()}

    def placement(self) -> Placement:
        return self._placement

    def close(self) -> None:
        self._request = None
        self._compiled = None


class OpenVinoAdapter(Adapter):
    name = "openvino"
    device_kind = "cpu"
    aliases = ("ov",)
    install_hint = HINT
    packages = ("openvino",)
    vendor_modules = ("openvino",)
    option_spec = {
        "device": Option("OpenVINO device name", str, "CPU"),
        "threads": Option("INFERENCE_NUM_THREADS (0 = plugin default; --threads sets it too)",
                          parse_non_negative_int),
        "streams": Option("NUM_STREAMS: parallel inference streams (0 = plugin default)",
                          parse_non_negative_int),
        "performance_hint": Option("PERFORMANCE_HINT", str, "latency",
                                   choices=("latency", "throughput")),
        "dynamic_quantization_group_size": Option(
            "DYNAMIC_QUANTIZATION_GROUP_SIZE: activations quantized per group for weight-"
            "compressed matmuls (int8/int4 models); 0 = off, unset = plugin default",
            parse_non_negative_int,
        ),
        "inference_precision": Option(
            "INFERENCE_PRECISION_HINT; f32 by default so results match the reference",
            str, "f32", choices=tuple(_PRECISIONS),
        ),
    }

    def device(self) -> str:
        """OpenVINO's ``GPU.1`` as portable's ``gpu:1``."""
        return self.options["device"].lower().replace(".", ":")

    def probe(self) -> DeviceInfo:
        ov = _import_openvino()
        core = ov.Core()
        devices = core.available_devices
        wanted = self.options["device"]
        if wanted not in devices:
            raise BackendUnavailable(
                f"OpenVINO {ov.get_version()} has no device {wanted} (available: "
                f"{', '.join(devices) or 'none'})",
                "choose one with -o openvino:device=NAME, or install the device's plugin",
            )
        return DeviceInfo(
            self.device(),
            str(core.get_property(wanted, "FULL_DEVICE_NAME")),
            runtime={"openvino": ov.get_version()},
            details={"inference_precision": _PRECISIONS[self.options["inference_precision"]]},
        )

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool"),
            dynamic_shapes=True,
        )

    def compile_config(self, config: SessionConfig) -> dict[str, str]:
        properties = {
            "PERFORMANCE_HINT": self.options["performance_hint"].upper(),
            "INFERENCE_PRECISION_HINT": self.options["inference_precision"],
        }
        threads = self.options["threads"] or config.threads
        if threads:
            properties["INFERENCE_NUM_THREADS"] = str(threads)
        if self.options["dynamic_quantization_group_size"] is not None:
            properties["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = str(
                self.options["dynamic_quantization_group_size"])
        if self.options["streams"]:
            properties["NUM_STREAMS"] = str(self.options["streams"])
        return properties

    def _read(self, core: Any, model_path: Path) -> Any:
        try:
            return core.read_model(str(model_path))
        except RuntimeError as exc:
            missing = _UNCONVERTED.search(str(exc))
            if missing:
                raise UnsupportedModel(
                    f"openvino cannot run {model_path}: no conversion for "
                    f"{missing.group(1).strip()}"
                ) from None
            # the ONNX checker passed in the parent: openvino declines what it cannot read
            raise UnsupportedModel(
                f"openvino cannot read {model_path}: {' '.join(str(exc).split())[:300]}"
            ) from None

    def _query(self, core: Any, model: Any) -> tuple[dict[str, int], tuple[str, ...]]:
        """The plugin's own answer (`query_model`): nodes per device, and the op types it
        cannot run."""
        supported = core.query_model(model, self.options["device"])
        by_device: dict[str, int] = {}
        unsupported: set[str] = set()
        for op in model.get_ops():
            target = supported.get(op.get_friendly_name())
            if target is None:
                unsupported.add(op.get_type_name())
            else:
                by_device[target.lower()] = by_device.get(target.lower(), 0) + 1
        return by_device, tuple(sorted(unsupported))

    def op_coverage(self, model_path: Path) -> OpCoverage:
        ov = _import_openvino()
        self.probe()
        core = ov.Core()
        source = f"openvino query_model on {self.options['device']}"
        try:
            model = self._read(core, model_path)
        except UnsupportedModel as exc:
            return OpCoverage(0, (str(exc).rpartition("no conversion for ")[2],),
                              "openvino ONNX frontend")
        by_device, unsupported = self._query(core, model)
        return OpCoverage(sum(by_device.values()) + len(unsupported), unsupported, source)

    def load(self, model_path: Path, config: SessionConfig) -> OpenVinoSession:
        ov = _import_openvino()
        self.probe()
        core = ov.Core()
        device = self.options["device"]
        model = self._read(core, model_path)
        by_device, unsupported = self._query(core, model)
        if unsupported:
            raise UnsupportedModel(
                f"openvino device {device} cannot run op(s) {', '.join(unsupported)}"
            )
        placement = Placement(self.device(), by_device, source="openvino query_model")
        try:
            compiled = core.compile_model(model, device, self.compile_config(config))
        except RuntimeError as exc:
            raise UnsupportedModel(f"openvino device {device} cannot compile {model_path}: "
                                   f"{' '.join(str(exc).split())[:300]}") from None
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        session = OpenVinoSession(
            compiled, read_signature(model_path), placement, _PRECISIONS.get(precision, precision)
        )
        with contextlib.suppress(RuntimeError, TypeError, ValueError):
            session.threads = int(compiled.get_property("INFERENCE_NUM_THREADS")) or None
        return session
