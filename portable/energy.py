"""Energy of a timed run from Linux RAPL counters, where the kernel lets us read them.

RAPL (``/sys/class/powercap/intel-rapl:N/energy_uj``, also used for AMD packages)
counts the energy of whole CPU packages, not of one process: on a busy machine
the figure includes the neighbours' work, and the result says so. Where no
counter is readable the result says "not available" and why: never an estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")
_PACKAGE = re.compile(r"^intel-rapl:\d+$")  # packages; sub-zones (core, dram) would double-count


def _read_uj(path: Path) -> int:
    return int(path.read_text().strip())


@dataclass
class EnergyMeter:
    zones: list[Path] = field(default_factory=list)
    start_uj: list[int] = field(default_factory=list)
    reason: str = ""

    @classmethod
    def start(cls) -> EnergyMeter:
        """Read every package counter now; a meter with a reason when none is readable."""
        try:
            zones = sorted(p for p in POWERCAP.iterdir() if _PACKAGE.match(p.name))
        except OSError:
            return cls(reason=f"{POWERCAP} not present (no RAPL on this machine or kernel)")
        if not zones:
            return cls(reason=f"no RAPL package zones under {POWERCAP}")
        try:
            return cls(zones, [_read_uj(z / "energy_uj") for z in zones])
        except (OSError, ValueError) as exc:
            return cls(reason=f"RAPL counters not readable ({exc}); reading needs root "
                              "on kernels since 5.10")

    def stop(self, tokens: int) -> dict[str, Any]:
        """Joules since `start` (counter wrap-around handled) and per token of the run."""
        if self.reason:
            return {"available": False, "reason": self.reason}
        joules = 0.0
        try:
            for zone, before in zip(self.zones, self.start_uj, strict=True):
                after = _read_uj(zone / "energy_uj")
                if after < before:  # the counter wrapped
                    after += _read_uj(zone / "max_energy_range_uj")
                joules += (after - before) / 1e6
        except (OSError, ValueError) as exc:
            return {"available": False, "reason": f"RAPL counters not readable ({exc})"}
        return {
            "available": True,
            "joules": joules,
            "joules_per_token": joules / tokens if tokens else None,
            "source": f"RAPL, {len(self.zones)} CPU package(s): whole packages, not this process",
        }
