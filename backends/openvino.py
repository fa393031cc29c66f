"""OpenVINO reading the ONNX file: the second real stack, on its CPU device here.

OpenVINO's CPU plugin computes in bf16 by default on CPUs with AVX-512 BF16 (or
AMX), which moved moe-tiny's logits by up to 0.46 and changed its chosen experts.
This adapter asks for f32 unless told otherwise, and reports the precision the
compiled model really uses so parity tolerance follows it. Placement comes from
`Core.query_model`, the plugin's own answer to "which ops can you run".
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
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


class OpenVinoSession(Session):
    def __init__(self, compiled: Any, signature: Any, placement: Placement, precision: str):
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._placement = placement
        self.inputs = signature.inputs
        self.outputs = signature.outputs
        self.compute_precision = None if precision == "float32" else precision
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._request is None:
            raise RuntimeError("session is closed")
        try:
            # ascontiguousarray would turn 0-d arrays into 1-d ones.
            results = self._request.infer({name: np.require(v, requirements="C") for name, v in
                                           feeds.items()})
        except RuntimeError as exc:
            raise InputError(f"openvino rejected the inputs: {exc}") from None
        by_name = {port.get_any_name(): value for port, value in results.items()}
        # infer() returns views into the request's buffers: copy, the next run reuses them.
        return {name: np.array(by_name[name]) for name in self._output_names}

    def placement(self) -> Placement:
        return self._placement

    def close(self) -> None:
        self._request = None
        self._compiled = None


class OpenVinoAdapter(Adapter):
    name = "openvino"
    device_kind = "cpu"
    priority = 5
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

    def load(self, model_path: Path, config: SessionConfig) -> OpenVinoSession:
        ov = _import_openvino()
        self.probe()
        core = ov.Core()
        device = self.options["device"]
        try:
            model = core.read_model(str(model_path))
        except RuntimeError as exc:
            missing = _UNCONVERTED.search(str(exc))
            if missing:
                raise UnsupportedModel(
                    f"openvino cannot run {model_path}: no conversion for "
                    f"{missing.group(1).strip()}"
                ) from None
            raise ModelError(f"openvino could not read {model_path}: {exc}") from None
        supported = core.query_model(model, device)
        ops = [op.get_friendly_name() for op in model.get_ops()]
        unsupported = sorted({
            op.get_type_name() for op in model.get_ops() if op.get_friendly_name() not in supported
        })
        if unsupported:
            raise UnsupportedModel(
                f"openvino device {device} cannot run op(s) {', '.join(unsupported)}"
            )
        by_device: dict[str, int] = {}
        for name in ops:
            target = supported[name].lower()
            by_device[target] = by_device.get(target, 0) + 1
        placement = Placement(self.device(), by_device, source="openvino query_model")
        compiled = core.compile_model(model, device, self.compile_config(config))
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        return OpenVinoSession(
            compiled, read_signature(model_path), placement, _PRECISIONS.get(precision, precision)
        )
