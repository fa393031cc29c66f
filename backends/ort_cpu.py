"""ONNX Runtime on the CPU execution provider: the reference backend in CI."""

from __future__ import annotations

from typing import Any

from portable.adapter import DeviceInfo
from portable.environment import cpu_model
from portable.kit.ort import CPU_PROVIDER, OrtAdapter


class OrtCpuAdapter(OrtAdapter):
    name = "ort-cpu"
    provider = CPU_PROVIDER
    device_kind = "cpu"
    aliases = ("cpu",)

    def device_info(self, ort: Any) -> DeviceInfo:
        return DeviceInfo("cpu", cpu_model(), runtime={"onnxruntime": ort.__version__})
