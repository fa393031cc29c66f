"""Acme's adapter: a stack that is an ONNX Runtime execution provider.

A real vendor sets `provider` to its EP (say "AcmeExecutionProvider"), lists the
EP's documented options and the driver its probe needs. This example uses the CPU
EP so it runs anywhere; everything else is what a vendor writes.
"""

from __future__ import annotations

from typing import Any

from portable.adapter import DeviceInfo
from portable.environment import cpu_model
from portable.ort import OrtAdapter


class AcmeAdapter(OrtAdapter):
    name = "acme"  # must equal the entry-point name
    provider = "CPUExecutionProvider"  # a real vendor: "AcmeExecutionProvider"
    device_kind = "cpu"  # a real vendor: "acme" (devices are reported as acme:0)
    install_hint = "pip install portable-acme"
    experimental = True  # until `portable conformance --backend acme` passes in the vendor's CI
    # A real vendor lists its EP's options, validated before ORT sees them, e.g.
    # provider_option_spec = {"device_id": Option("device index", parse_non_negative_int, 0)}
    # A real vendor also sets `runtime = VendorRuntime(...)` (portable.probing) so probe()
    # names the missing driver, device nodes and libraries.

    def device_info(self, ort: Any) -> DeviceInfo:
        return DeviceInfo("cpu", f"Acme reference device ({cpu_model()})",
                          runtime={"onnxruntime": ort.__version__, "acme": "0.1.0"})
