"""Hygon DCUs (DTK, ROCm-compatible): detection only; see portable.stub."""

from portable.kit.probing import VendorRuntime
from portable.kit.stub import VendorStubAdapter


class DcuAdapter(VendorStubAdapter):
    name = "dcu"
    device_kind = "dcu"
    ray_resources = {"DCU": 1}
    runtime = VendorRuntime(
        vendor="Hygon DCU",
        device_nodes=("/dev/kfd", "/dev/dri/renderD*"),
        libraries=("libgalaxyhip.so", "libamdhip64.so"),
        home_vars={"ROCM_PATH": ("/opt/dtk",)},
        tools=("hy-smi", "rocm-smi"),
        install_hint="install the DCU driver and Hygon DTK (source /opt/dtk/env.sh)",
    )
