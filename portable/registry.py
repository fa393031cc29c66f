"""Finding adapters: entry points in the group ``portable.backends``, one loaded per lookup.

Built-in and vendor adapters register the same way. Listing names imports nothing;
looking up a name imports only that adapter's module. A table of known stacks that
are not installed turns "unknown backend" into "install this". ``PORTABLE_BACKENDS``
(comma-separated names) narrows what loads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata

from portable.adapter import API_VERSION, Adapter, DeviceInfo
from portable.errors import AdapterLoadError, BackendNotFound, BackendUnavailable, PortableError

log = logging.getLogger(__name__)

GROUP = "portable.backends"
ENV_FILTER = "PORTABLE_BACKENDS"

ALIASES: Mapping[str, str] = {
    "cpu": "ort-cpu",
    "cuda": "ort-cuda",
    "tensorrt": "ort-tensorrt",
    "ascend": "cann",
    "ov": "openvino",
}

#: Stacks portable knows of, with what to install when their adapter is absent.
KNOWN_BACKENDS: Mapping[str, str] = {
    "openvino": "pip install 'portable[openvino]'",
    "ort-cuda": "pip install 'portable[cuda]' on a machine with an NVIDIA GPU and CUDA",
    "ort-tensorrt": "pip install 'portable[cuda]' and TensorRT on a machine with an NVIDIA GPU",
    "cann": "pip install 'portable[cann]' on a host with Huawei Ascend NPUs and the CANN toolkit",
    "musa": "install the Moore Threads MUSA toolkit and driver, then the portable MUSA adapter",
    "dcu": "install Hygon DTK (ROCm-compatible) and driver, then the portable DCU adapter",
    "xpu": "install the Kunlunxin XPU runtime (XRE) and driver, then the portable XPU adapter",
    "gcu": "install the Enflame TopsRider SDK and driver, then the portable GCU adapter",
}


def canonical_name(name: str) -> str:
    lowered = name.strip().lower()
    return ALIASES.get(lowered, lowered)


def _enabled_filter() -> set[str] | None:
    raw = os.environ.get(ENV_FILTER, "").strip()
    if not raw:
        return None
    return {canonical_name(part) for part in raw.split(",") if part.strip()}


def _entry_points(apply_filter: bool = True) -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            log.warning(
                "backend %s registered twice (%s, %s); using the first",
                ep.name,
                found[ep.name].value,
                ep.value,
            )
            continue
        found[ep.name] = ep
    allowed = _enabled_filter() if apply_filter else None
    if allowed is not None:
        found = {name: ep for name, ep in found.items() if name in allowed}
    return found


def installed_names() -> list[str]:
    """Names of installed adapters (after PORTABLE_BACKENDS), importing nothing."""
    return sorted(_entry_points())


def known_names() -> list[str]:
    """Installed adapters plus known stacks that can be installed."""
    return sorted(set(installed_names()) | set(KNOWN_BACKENDS))


def load_adapter_class(name: str) -> type[Adapter]:
    """Import and check the one adapter registered as `name` (aliases accepted)."""
    canonical = canonical_name(name)
    eps = _entry_points()
    if canonical not in eps:
        if canonical in _entry_points(apply_filter=False):
            raise BackendUnavailable(
                f"backend {canonical!r} is disabled by {ENV_FILTER}={os.environ[ENV_FILTER]!r}",
                f"add {canonical} to {ENV_FILTER} or unset it",
            )
        if canonical in KNOWN_BACKENDS:
            raise BackendUnavailable(
                "not installed", KNOWN_BACKENDS[canonical]
            )
        raise BackendNotFound(name, set(eps) | set(KNOWN_BACKENDS) | set(ALIASES))
    ep = eps[canonical]
    try:
        cls = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - even sys.exit() at import costs one row
        raise AdapterLoadError(
            f"backend {canonical!r}: importing {ep.value} failed: {type(exc).__name__}: {exc}"
        ) from exc
    check_adapter_class(canonical, cls)
    return cls


def check_adapter_class(name: str, cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterLoadError(f"backend {name!r}: {cls!r} is not a portable.adapter.Adapter")
    if getattr(cls, "name", None) != name:
        raise AdapterLoadError(
            f"backend {name!r}: entry point name does not match the adapter's name "
            f"{getattr(cls, 'name', None)!r}"
        )
    major, minor = cls.api_version
    if major != API_VERSION[0]:
        raise AdapterLoadError(
            f"backend {name!r} was built for adapter API {major}.{minor}; "
            f"this portable speaks {API_VERSION[0]}.{API_VERSION[1]}: "
            "upgrade the adapter or portable so their major versions match"
        )


def create(name: str, options: Mapping[str, str] | None = None) -> Adapter:
    """Look up `name` and construct it with `options` (validated by the adapter)."""
    return load_adapter_class(name)(options)


@dataclass(frozen=True)
class BackendStatus:
    """One row of `portable backends`."""

    name: str
    installed: bool
    available: bool
    device: DeviceInfo | None = None
    reason: str = ""
    hint: str = ""
    experimental: bool = False
    hidden: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "installed": self.installed,
            "available": self.available,
            "device": self.device.to_dict() if self.device else None,
            "reason": self.reason,
            "hint": self.hint,
            "experimental": self.experimental,
        }


def status(name: str) -> BackendStatus:
    """Load and probe one backend, turning every failure into a reason (never raising)."""
    try:
        cls = load_adapter_class(name)
    except BackendUnavailable as exc:
        return BackendStatus(name, False, False, reason=exc.reason, hint=exc.hint)
    except PortableError as exc:
        return BackendStatus(name, True, False, reason=str(exc))
    flags = {"experimental": cls.experimental, "hidden": cls.hidden}
    try:
        device = cls().probe()
    except BackendUnavailable as exc:
        return BackendStatus(name, True, False, reason=exc.reason, hint=exc.hint, **flags)
    except Exception as exc:  # the contract says probe raises only BackendUnavailable
        return BackendStatus(
            name,
            True,
            False,
            reason=f"probe broke the adapter contract: {type(exc).__name__}: {exc}",
            **flags,
        )
    return BackendStatus(name, True, True, device=device, **flags)


def survey(include_hidden: bool = False) -> list[BackendStatus]:
    """Status of every installed and known backend, for `portable backends`."""
    rows = [status(name) for name in known_names()]
    return [row for row in rows if include_hidden or not row.hidden]
