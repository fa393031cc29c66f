"""Enflame GCUs (TopsRider SDK): detection only; see portable.stub."""

from portable.kit.probing import VendorRuntime
from portable.kit.stub import VendorStubAdapter


class GcuAdapter(VendorStubAdapter):
    name = "gcu"
    device_kind = "gcu"
    ray_resources = {"GCU": 1}
    runtime = VendorRuntime(
        vendor="Enflame GCU",
        device_nodes=("/dev/gcu[0-9]*",),
        libraries=("libtopsrt.so",),
        home_vars={"TOPS_HOME": ("/opt/tops",)},
        tools=("efsmi",),
        packages=("torch_gcu",),
        install_hint="install the Enflame driver and TopsRider SDK, then torch_gcu",
    )
