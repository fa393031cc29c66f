"""A base for vendor stacks portable can detect but not yet run: MUSA, DCU, XPU, GCU.

Such an adapter probes for the vendor runtime as the vendor documents it and says
exactly what is missing. It never runs a model: `load()` refuses, so nothing ever
runs on another device under the vendor's name. A vendor package that can run
models registers its own adapter under the same name and replaces the stub.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from portable.adapter import (
    Adapter,
    Capabilities,
    DeviceInfo,
    Option,
    Session,
    SessionConfig,
    parse_non_negative_int,
)
from portable.environment import package_version
from portable.errors import BackendUnavailable
from portable.kit.probing import VendorRuntime


class VendorStubAdapter(Adapter):
    """Subclasses set `name`, `device_kind` and `runtime`."""

    runtime: ClassVar[VendorRuntime]
    experimental = True
    option_spec = {"device_id": Option("device index", parse_non_negative_int, 0)}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if runtime := getattr(cls, "runtime", None):
            cls.install_hint = runtime.install_hint
            cls.packages = tuple(runtime.packages)

    def probe(self) -> DeviceInfo:
        nodes = self.runtime.require()
        versions = {pkg: v for pkg in self.runtime.packages if (v := package_version(pkg))}
        return DeviceInfo(
            f"{self.device_kind}:{self.options['device_id']}",
            f"{self.runtime.vendor} device",
            runtime=versions,
            device_count=len(nodes),
        )

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=())

    def load(self, model_path: Path, config: SessionConfig) -> Session:
        self.probe()
        raise BackendUnavailable(
            f"the {self.runtime.vendor} runtime is present, but this stub adapter only "
            "detects it; it runs nothing rather than run elsewhere under this name",
            f"install the vendor's portable adapter package for {self.name}",
        )
