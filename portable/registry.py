"""Finding adapters: entry points in the group ``portable.backends``, one loaded per lookup.

Built-in and vendor adapters register the same way. Listing names imports nothing;
looking up a name imports only that adapter's module. Names, aliases (``cpu``) and
install hints live on the adapter classes, not in a table here; an alias is looked
up among in-tree adapters first. ``PORTABLE_BACKENDS`` (comma-separated names)
narrows what loads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata

from portable.adapter import API_VERSION, Adapter, DeviceInfo
from portable.errors import AdapterLoadError, BackendNotFound, BackendUnavailable, PortableError

log = logging.getLogger(__name__)

GROUP = "portable.backends"
ENV_FILTER = "PORTABLE_BACKENDS"

BUILTIN_DISTRIBUTION = "portable"
"""The distribution whose entry points are the in-tree adapters (searched first for aliases)."""


def _adapter_classes() -> Iterator[tuple[str, type[Adapter]]]:
    """(name, class) of installed adapters, in-tree ones first; ones that fail to load skipped."""
    eps = sorted(_entry_points(apply_filter=False).values(),
                 key=lambda ep: (getattr(ep.dist, "name", None) != BUILTIN_DISTRIBUTION, ep.name))
    for ep in eps:
        try:
            yield ep.name, load_adapter_class(ep.name, apply_filter=False)
        except PortableError:
            continue


def canonical_name(name: str) -> str:
    """The registry name for `name` or for an alias an adapter class declares (``cpu``)."""
    lowered = name.strip().lower()
    if lowered in _entry_points(apply_filter=False):
        return lowered
    for registered, cls in _adapter_classes():
        if lowered in cls.aliases:
            return registered
    return lowered


def aliases() -> dict[str, str]:
    """Every alias adapters declare, mapped to its registry name (imports every adapter)."""
    return {alias: name for name, cls in _adapter_classes() for alias in cls.aliases}


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


def load_adapter_class(name: str, apply_filter: bool = True) -> type[Adapter]:
    """Import and check the one adapter registered as `name` (aliases accepted)."""
    canonical = canonical_name(name)
    eps = _entry_points(apply_filter)
    if canonical not in eps:
        if canonical in _entry_points(apply_filter=False):
            raise BackendUnavailable(
                f"backend {canonical!r} is disabled by {ENV_FILTER}={os.environ[ENV_FILTER]!r}",
                f"add {canonical} to {ENV_FILTER} or unset it",
            )
        raise BackendNotFound(name, set(_entry_points(apply_filter=False)) | set(aliases()))
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
    """Status of every installed backend, for `portable backends`."""
    rows = [status(name) for name in installed_names()]
    return [row for row in rows if include_hidden or not row.hidden]


def declared_packages(names: Iterable[str]) -> list[str]:
    """Distributions the named adapters declare (`Adapter.packages`), for result environments."""
    found: list[str] = []
    for name in names:
        try:
            found.extend(load_adapter_class(name).packages)
        except PortableError:
            continue
    return list(dict.fromkeys(found))
