"""What one rank's process uses: resident memory, CPU, and on a GPU its utilisation, memory and heat.

Sampled at each log step and sent to rank 0 in the rank's row of the ``train`` event
(docs/contracts.md, ``RANK_HEALTH_FIELDS``); the console's health rules read them. A figure that
does not exist here (no GPU, no NVML) is left out of the row, never written as a guess.

RSS and CPU time come from /proc/self/statm and /proc/self/stat, written by hand on purpose:
psutil would be a new dependency for two numbers, and ``resource.getrusage`` gives the peak
resident set, not the current one. Off Linux both are simply absent. GPU figures come from
torch.cuda: memory from ``mem_get_info`` (the whole device, as nvidia-smi shows it), utilisation
and temperature from ``torch.cuda.utilization`` / ``temperature``, which need NVML
(nvidia-ml-py) and are absent without it.
"""

from __future__ import annotations

import math
import os
import time

from engine.events import RANK_HEALTH_FIELDS

#: Optional fields of a rank row, in the order they travel in the gathered float row.
HEALTH_FIELDS: tuple[str, ...] = RANK_HEALTH_FIELDS

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_mb(statm_path: str = "/proc/self/statm") -> float | None:
    """Current resident set in MiB (second field of statm, in pages), None where there is no /proc."""
    try:
        with open(statm_path, "rb") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * _PAGE_BYTES / 2**20


def cpu_seconds(stat_path: str = "/proc/self/stat") -> float | None:
    """User + system CPU seconds of this process (utime, stime: fields 14 and 15 of stat)."""
    try:
        with open(stat_path, "rb") as handle:
            stat = handle.read()
        fields = stat[stat.rindex(b")") + 2:].split()  # the command name may hold spaces
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


class ResourceProbe:
    """Samples this rank's resources; CPU percent is measured between two samples.

    ``cuda`` is the torch.cuda module (or a stand-in with the same functions) when the rank
    trains on a GPU, else None; ``device`` its device index.
    """

    def __init__(self, cuda=None, device=None, clock=time.monotonic,
                 read_rss=rss_mb, read_cpu=cpu_seconds) -> None:
        self.cuda = cuda
        self.device = device
        self.clock = clock
        self.read_rss = read_rss
        self.read_cpu = read_cpu
        self._last = (clock(), read_cpu())

    def sample(self) -> dict[str, float]:
        """The figures that exist here, by HEALTH_FIELDS name."""
        figures: dict[str, float] = {}
        rss = self.read_rss()
        if rss is not None:
            figures["rss_mb"] = rss
        now, cpu = self.clock(), self.read_cpu()
        (then, cpu_then), self._last = self._last, (now, cpu)
        if cpu is not None and cpu_then is not None and now > then:
            figures["cpu_percent"] = 100.0 * (cpu - cpu_then) / (now - then)
        if self.cuda is not None:
            figures.update(self._gpu())
        return figures

    def _gpu(self) -> dict[str, float]:
        figures: dict[str, float] = {}
        try:
            free, total = self.cuda.mem_get_info(self.device)
            figures["gpu_memory_used_mb"] = (total - free) / 2**20
            figures["gpu_memory_total_mb"] = total / 2**20
        except Exception:  # noqa: BLE001 - a driver without the query: the figure is absent
            pass
        # Both need NVML (nvidia-ml-py); torch raises ModuleNotFoundError/RuntimeError without it.
        for name, query in (("gpu_util", "utilization"), ("gpu_temperature_c", "temperature")):
            try:
                figures[name] = float(getattr(self.cuda, query)(self.device))
            except Exception:  # noqa: BLE001
                pass
        return figures

    def row_values(self) -> list[float]:
        """A sample as floats in HEALTH_FIELDS order (NaN where absent), for the all-gather."""
        figures = self.sample()
        return [float(figures.get(name, math.nan)) for name in HEALTH_FIELDS]


def figures_from_values(values: list[float]) -> dict[str, float]:
    """Gathered HEALTH_FIELDS values back to a dict; NaN (absent on that rank) is left out."""
    return {name: value for name, value in zip(HEALTH_FIELDS, values) if math.isfinite(value)}


def probe_for(device) -> ResourceProbe:
    """The probe of a rank training on ``device`` (a torch.device)."""
    if device.type == "cuda":
        import torch

        return ResourceProbe(cuda=torch.cuda, device=device)
    return ResourceProbe()
