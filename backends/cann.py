"""ONNX Runtime on Huawei Ascend NPUs: the CANN execution provider from `onnxruntime-cann`.

CANN's default precision mode (force_fp16) computes float32 models in float16; the
session declares that, so parity uses float16's tolerance. `onnxruntime-cann`
replaces `onnxruntime` and is built against NumPy 1.x: install it in its own
environment. The options are the ones ORT documents for the CANN EP.
"""

from __future__ import annotations

from typing import Any

from portable.adapter import DeviceInfo, Option, parse_non_negative_int
from portable.environment import package_version
from portable.errors import BackendUnavailable
from portable.kit.ort import OrtAdapter, parse_flag
from portable.kit.probing import VendorRuntime, device_nodes

HINT = ("pip install 'portable[cann]' (onnxruntime-cann, needs numpy<2, instead of "
        "onnxruntime) on a host with Ascend NPUs, their driver and the CANN toolkit "
        "(source set_env.sh)")

ASCEND = VendorRuntime(
    vendor="Huawei Ascend",
    device_nodes=("/dev/davinci[0-9]*",),
    libraries=("libascendcl.so",),
    home_vars={"ASCEND_TOOLKIT_HOME": ("/usr/local/Ascend/ascend-toolkit/latest",)},
    tools=("npu-smi",),
    install_hint=HINT,
)

PRECISION_MODES = ("force_fp32", "force_fp16", "allow_fp32_to_fp16", "must_keep_origin_dtype",
                   "allow_mix_precision")
#: Modes that keep float32 models in float32; the others compute (some) float32 ops in fp16.
_KEEPS_FP32 = {"force_fp32", "must_keep_origin_dtype"}



class CannAdapter(OrtAdapter):
    name = "cann"
    aliases = ("ascend",)
    packages = ("onnxruntime-cann",)
    provider = "CANNExecutionProvider"
    device_kind = "npu"
    ray_resources = {"NPU": 1}
    """Ray's own name for Ascend NPUs (auto-detected on an Ascend node)."""
    install_hint = HINT
    runtime = ASCEND
    experimental = True
    provider_option_spec = {
        "device_id": Option("NPU index", parse_non_negative_int, 0),
        "npu_mem_limit": Option("size limit of the device memory arena, bytes",
                                parse_non_negative_int),
        "arena_extend_strategy": Option("how the arena grows", str,
                                        choices=("kNextPowerOfTwo", "kSameAsRequested")),
        "enable_cann_graph": Option("run whole graphs on CANN's graph engine (0/1)",
                                    parse_flag),
        "dump_graphs": Option("dump the graphs CANN builds (0/1)", parse_flag),
        "dump_om_model": Option("dump the offline (.om) model (0/1)", parse_flag),
        "precision_mode": Option("operator precision; CANN's default is force_fp16", str,
                                 choices=PRECISION_MODES),
        "op_select_impl_mode": Option("operator implementation mode", str,
                                      choices=("high_precision", "high_performance")),
        "optypelist_for_implmode": Option(
            "comma-separated op types op_select_impl_mode applies to", str),
    }

    def probe(self) -> DeviceInfo:
        wheel, numpy = package_version("onnxruntime-cann"), package_version("numpy")
        if wheel and numpy and int(numpy.split(".")[0]) >= 2:
            raise BackendUnavailable(
                f"onnxruntime-cann {wheel} is built against NumPy 1.x, but numpy {numpy} is "
                "installed", "pip install 'numpy<2' (the [cann] extra pins it)")
        return super().probe()

    def compute_precision(self) -> str | None:
        mode = self.options["precision_mode"] or "force_fp16"
        return None if mode in _KEEPS_FP32 else "float16"

    def device_info(self, ort: Any) -> DeviceInfo:
        return DeviceInfo(
            self.device(),
            "Huawei Ascend NPU",
            runtime={"onnxruntime": ort.__version__},
            device_count=len(device_nodes(ASCEND.device_nodes)),
            details={"precision_mode": self.options["precision_mode"] or "force_fp16 (default)"},
        )
