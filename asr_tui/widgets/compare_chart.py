"""One metric of several runs on shared axes, each run in a colour of its own.

The runs' colours are fixed (:data:`RUN_COLORS`, a plotext theme registered on first draw), so
the Compare screen's legend line can show every run name in its curve's colour even where the
chart is too small for plotext's own legend box.
"""

from __future__ import annotations

from asr_tui.widgets.chart import MetricChart

# 256-colour codes, one per run in order: bright blue, green, red, yellow, magenta, cyan, orange, white.
RUN_COLORS = (12, 10, 9, 11, 13, 14, 208, 15)
THEME = "asr-tui-compare"


def run_style(index: int) -> str:
    """The rich style of the ``index``-th run's curve."""
    return f"bold color({RUN_COLORS[index % len(RUN_COLORS)]})"


def _register_theme() -> str:
    """plotext's dark theme with RUN_COLORS as its signal colours; "dark" if plotext changed."""
    try:
        from plotext._primitives.pixel import pixel
        from plotext._settings.themes import themes
    except ImportError:
        return "dark"
    if THEME not in themes:
        themes[THEME] = dict(themes["dark"], sequence=[pixel(foreground=c) for c in RUN_COLORS] * 2)
    return THEME


class CompareChart(MetricChart):
    """Chart of ``metric`` for every run; :meth:`redraw` takes {run label: Series} in run order."""

    POINTS_AFTER_FIRST = False  # every run a line, told apart by its colour and name

    NAMES_IN_TITLE = False  # the Compare screen's legend line names the runs in their colours

    def __init__(self, title: str, metric: str, **kwargs) -> None:
        super().__init__(title, **kwargs)
        self.metric = metric

    def _render_plot(self, chosen, width: int, height: int) -> str:
        self.THEME = _register_theme()
        return super()._render_plot(chosen, width, height)

    def _skip_slot(self, figure) -> None:
        try:
            figure._next_marker()  # the run's colour goes unused rather than to the next run
        except AttributeError:
            pass

    def chosen(self, series):
        # Every run keeps its slot (and so its colour) even when it has no points yet:
        # an empty series is drawn as nothing rather than shifting the colours of the rest.
        chosen = list(series.items())
        return chosen if any(len(s) for _, s in chosen) else []
