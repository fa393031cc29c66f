"""Moore Threads GPUs (MUSA): detection only; see portable.stub."""

from portable.kit.probing import VendorRuntime
from portable.kit.stub import VendorStubAdapter


class MusaAdapter(VendorStubAdapter):
    name = "musa"
    device_kind = "musa"
    ray_resources = {"MUSA": 1}
    runtime = VendorRuntime(
        vendor="Moore Threads MUSA",
        device_nodes=("/dev/mtgpu*",),
        libraries=("libmusart.so", "libmusa.so"),
        home_vars={"MUSA_HOME": ("/usr/local/musa",)},
        tools=("mthreads-gmi",),
        packages=("torch_musa",),
        install_hint="install the MTGPU driver and the MUSA toolkit (MUSA_HOME=/usr/local/musa), "
        "then torch_musa",
    )
