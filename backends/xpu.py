"""Kunlunxin XPUs (XRE runtime): detection only; see portable.stub."""

from portable.kit.probing import VendorRuntime
from portable.kit.stub import VendorStubAdapter


class XpuAdapter(VendorStubAdapter):
    name = "xpu"
    device_kind = "xpu"
    ray_resources = {"XPU": 1}
    runtime = VendorRuntime(
        vendor="Kunlunxin XPU",
        device_nodes=("/dev/xpu[0-9]*",),
        libraries=("libxpurt.so",),
        home_vars={"XRE_HOME": ("/usr/local/xpu",)},
        tools=("xpu_smi", "xpu-smi"),
        packages=("torch_xmlir", "paddle"),
        install_hint="install the Kunlunxin XPU driver and XRE runtime, then its PyTorch or "
        "Paddle plugin",
    )
