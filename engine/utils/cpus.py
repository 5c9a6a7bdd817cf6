"""Cores and threads, without torch: shared by the trainer (engine.utils.dist) and ``asr-train doctor``."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """Cores this process may run on (affinity and cgroup-pinned sets count, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_process(local_world_size: int) -> int:
    """Intra-op threads of each of the ``local_world_size`` processes of a node: the cores shared out."""
    return max(1, usable_cpus() // max(1, local_world_size))


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 ``flags``, Arm ``Features``); empty where unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("flags", "features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
