"""The monitor's Resources tab: per-rank memory and utilisation over time.

The series come from the ``rss_mb``, ``cpu_percent``, ``gpu_memory_used_mb`` and ``gpu_util``
fields the engine adds to each rank's row (docs/contracts.md); ``RunState`` keeps one bounded
series per rank and figure, against minutes since the first train event. A figure the run does
not have (no GPU) says so in its chart.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Grid

from asr_tui.widgets.chart import MetricChart

# (chart id, title, series prefix in RunState.series)
# Redrawn at most this often while following (a tab switch, resize or toggle redraws at once):
# the figures change slowly, and four charts of eight ranks cost as much to draw as the rest of
# the monitor's following.
REDRAW_SECONDS = 10.0

RESOURCE_CHARTS = (("res-rss", "RSS MiB", "rss/"), ("res-cpu", "CPU %", "cpu/"),
                   ("res-gpumem", "GPU memory MiB", "gpumem/"), ("res-gpuutil", "GPU util %", "gpuutil/"))


class ResourceChart(MetricChart):
    """One figure of every rank. Names go in the title: the curves are flat lines across the
    whole width, which a legend box would hide."""

    LEGEND_BOX = False


class ResourcesGrid(Grid):
    """Four charts, one series per rank each (r0, r1, ...); x is minutes since the first train event."""

    DEFAULT_CSS = """
    ResourcesGrid { grid-size: 2; grid-gutter: 0 1; height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        for chart_id, title, prefix in RESOURCE_CHARTS:
            yield ResourceChart(title, prefix=prefix, id=chart_id)

    _last_draw = 0.0

    def due(self) -> bool:
        """Whether the periodic redraw may run now (and, if so, it counts as done)."""
        now = time.monotonic()
        if now - self._last_draw < REDRAW_SECONDS:
            return False
        self._last_draw = now
        return True

    def show_present(self, series: dict) -> bool:
        """Hide the GPU charts of a run without GPU figures: the CPU ones get the whole tab.
        Returns whether a chart was shown or hidden (the layout changes)."""
        changed = False
        for chart in self.query(MetricChart):
            if chart.prefix.startswith("gpu"):
                present = any(name.startswith(chart.prefix) for name in series)
                if chart.display != present:
                    chart.display = present
                    changed = True
        return changed
