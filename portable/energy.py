"""Energy of a timed run from hardware counters, where this machine lets us read them.

Two sources, summed when both are there:

* Linux RAPL (``/sys/class/powercap/intel-rapl:N/energy_uj``, also AMD packages):
  whole CPU packages, not one process, so on a busy machine the figure includes
  the neighbours' work; the result says so.
* NVML on NVIDIA GPUs (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since
  the driver loaded, Volta and newer), through ``pynvml`` (nvidia-ml-py) when installed.

Where neither is readable the result says "not available" and why: never an estimate.
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


def _rapl() -> tuple[list[Path], list[int], str]:
    """Package zones and their counters now, or the reason there are none."""
    try:
        zones = sorted(p for p in POWERCAP.iterdir() if _PACKAGE.match(p.name))
    except OSError:
        return [], [], f"{POWERCAP} not present (no RAPL on this machine or kernel)"
    if not zones:
        return [], [], f"no RAPL package zones under {POWERCAP}"
    try:
        return zones, [_read_uj(z / "energy_uj") for z in zones], ""
    except (OSError, ValueError) as exc:
        return [], [], f"RAPL counters not readable ({exc}); reading needs root since Linux 5.10"


def _nvml() -> tuple[Any, list[Any], list[int], str]:
    """pynvml, the GPU handles and their energy counters (mJ) now, or the reason."""
    try:
        import pynvml
    except ImportError:
        return None, [], [], "no NVML (pip install nvidia-ml-py on NVIDIA machines)"
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                   for i in range(pynvml.nvmlDeviceGetCount())]
        return pynvml, handles, [pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
                                 for h in handles], ""
    except Exception as exc:  # NVMLError: no driver, no GPU, or a GPU without the counter
        return None, [], [], f"NVML energy not readable ({exc})"


@dataclass
class EnergyMeter:
    zones: list[Path] = field(default_factory=list)
    start_uj: list[int] = field(default_factory=list)
    nvml: Any = None
    gpus: list[Any] = field(default_factory=list)
    start_mj: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> EnergyMeter:
        """Read every counter now; a meter that only knows why when none is readable."""
        zones, start_uj, rapl_reason = _rapl()
        nvml, gpus, start_mj, nvml_reason = _nvml()
        return cls(zones, start_uj, nvml, gpus, start_mj,
                   [r for r in (rapl_reason, nvml_reason) if r])

    @property
    def available(self) -> bool:
        return bool(self.zones or self.gpus)

    def _rapl_joules(self) -> float:
        joules = 0.0
        for zone, before in zip(self.zones, self.start_uj, strict=True):
            after = _read_uj(zone / "energy_uj")
            if after < before:  # the counter wrapped
                after += _read_uj(zone / "max_energy_range_uj")
            joules += (after - before) / 1e6
        return joules

    def _nvml_joules(self) -> float:
        now = [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.gpus]
        return sum(after - before for after, before in zip(now, self.start_mj, strict=True)) / 1e3

    def stop(self, tokens: int) -> dict[str, Any]:
        """Joules since `start` and per token of the run, naming what was counted."""
        if not self.available:
            return {"available": False, "reason": "; ".join(self.reasons)}
        joules, sources = 0.0, []
        try:
            if self.zones:
                joules += self._rapl_joules()
                sources.append(f"RAPL, {len(self.zones)} CPU package(s): whole packages, "
                               "not this process")
            if self.gpus:
                joules += self._nvml_joules()
                sources.append(f"NVML, {len(self.gpus)} GPU(s)")
        except Exception as exc:  # a counter that vanished mid-run: no figure, not a guess
            return {"available": False, "reason": f"energy counters not readable ({exc})"}
        finally:
            if self.nvml is not None:
                self.nvml.nvmlShutdown()
        return {
            "available": True,
            "joules": joules,
            "joules_per_token": joules / tokens if tokens else None,
            "source": "; ".join(sources),
        }
