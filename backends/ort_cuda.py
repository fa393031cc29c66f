"""ONNX Runtime on NVIDIA GPUs: the CUDA execution provider, and TensorRT on top of it.

`onnxruntime-gpu` lists CUDAExecutionProvider as available even on a host with no
GPU or driver, and then runs the session on CPU; so probe() also looks for the
driver, and load() (through OrtAdapter) refuses a session whose first provider is
not CUDA. Timed runs bind inputs and outputs on the GPU (IO binding), so latency
is the device's, not host copies'.
"""

from __future__ import annotations

import subprocess
from typing import Any

from portable.adapter import DeviceInfo, Option, parse_non_negative_int
from portable.kit.ort import OrtAdapter, parse_flag
from portable.kit.probing import VendorRuntime, device_nodes, find_tool

HINT = ("pip install 'portable[cuda]' (onnxruntime-gpu, instead of onnxruntime) "
        "with an NVIDIA driver")
_ARENA = ("kNextPowerOfTwo", "kSameAsRequested")

NVIDIA_DRIVER = VendorRuntime(
    vendor="NVIDIA",
    device_nodes=("/dev/nvidia[0-9]*",),
    libraries=("libcuda.so",),
    install_hint=HINT,
)



def query_gpus(*fields: str) -> list[list[str]]:
    """One row of `fields` per GPU from nvidia-smi (the driver's own tool); [] without it."""
    smi = find_tool("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


class OrtCudaAdapter(OrtAdapter):
    name = "ort-cuda"
    provider = "CUDAExecutionProvider"
    device_kind = "cuda"
    install_hint = HINT
    runtime = NVIDIA_DRIVER
    io_binding_device = "cuda"
    aliases = ("cuda",)
    packages = ("onnxruntime-gpu",)
    ray_resources = {"GPU": 1}
    provider_option_spec = {
        "device_id": Option("CUDA device index", parse_non_negative_int, 0),
        "gpu_mem_limit": Option("size limit of the device memory arena, bytes",
                                parse_non_negative_int),
        "arena_extend_strategy": Option("how the arena grows", str, choices=_ARENA),
        "cudnn_conv_algo_search": Option("cuDNN convolution algorithm search", str,
                                         choices=("EXHAUSTIVE", "HEURISTIC", "DEFAULT")),
        "do_copy_in_default_stream": Option("copy on the compute stream (0/1)", parse_flag),
        "cudnn_conv_use_max_workspace": Option("let cuDNN use the largest workspace (0/1)",
                                               parse_flag),
        "enable_cuda_graph": Option("capture and replay a CUDA graph (0/1)", parse_flag),
        "use_tf32": Option("allow TF32 math in matmul/conv (0/1)", parse_flag),
    }

    def compute_precision(self) -> str | None:
        # TF32 keeps float32 storage but rounds matmul inputs to a 10-bit mantissa;
        # ORT enables it by default on GPUs that have it.
        return None if self.options["use_tf32"] == "0" else "tfloat32"

    def device_info(self, ort: Any) -> DeviceInfo:
        gpus = query_gpus("name", "memory.total", "driver_version")
        index = self.options["device_id"] or 0
        name, total_mib, driver = gpus[index] if index < len(gpus) else ("NVIDIA GPU", "", "")
        return DeviceInfo(
            self.device(),
            name,
            runtime={"onnxruntime": ort.__version__, **({"driver": driver} if driver else {})},
            device_count=len(gpus) or len(device_nodes(NVIDIA_DRIVER.device_nodes)),
            memory_bytes=int(total_mib) * 2**20 if total_mib.isdigit() else None,
        )

    def device_memory(self) -> dict[str, int]:
        """Memory in use on the GPU (all processes), as the driver reports it."""
        gpus = query_gpus("memory.used")
        index = self.options["device_id"] or 0
        if index < len(gpus) and gpus[index][0].isdigit():
            return {"device_used_bytes": int(gpus[index][0]) * 2**20}
        return {}


class OrtTensorrtAdapter(OrtCudaAdapter):
    """TensorRT EP; what TensorRT cannot build runs on CUDA (same GPU), never silently on CPU."""

    name = "ort-tensorrt"
    provider = "TensorrtExecutionProvider"
    same_device_providers = ("CUDAExecutionProvider",)
    aliases = ("tensorrt",)
    provider_option_spec = {
        "device_id": OrtCudaAdapter.provider_option_spec["device_id"],
        "trt_max_workspace_size": Option("TensorRT workspace, bytes", parse_non_negative_int),
        "trt_fp16_enable": Option("let TensorRT use float16 kernels (0/1)", parse_flag),
        "trt_engine_cache_enable": Option("cache built engines (0/1)", parse_flag),
        "trt_engine_cache_path": Option("folder for cached engines", str),
    }

    def compute_precision(self) -> str | None:
        return "float16" if self.options["trt_fp16_enable"] == "1" else None
