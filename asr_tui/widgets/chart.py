"""A plotext line chart of one or more run series, drawn into a Static.

plotext renders to an ANSI string (figure.build().string()), shown as rich Text. Rendering
costs tens of milliseconds, so the chart redraws only when asked by its screen's throttled
timer and only if its data or size changed; series are cut to two points per braille cell
first, since more cannot show.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.widget import Widget

from asr_tui.run_state import Series
from asr_tui.widgets.lr_preview import short_count

SMOOTHING = 0.8  # weight of the running average, as TensorBoard's smoothing slider
LEGEND_MIN_HEIGHT = 14  # below this the legend box would hide the curves: names go in the title
# The first series is a braille line; the others are points drawn with these characters, so
# train and valid can be told apart without colour (NO_COLOR, monochrome terminals).
POINT_MARKERS = ("x", "o", "+", "*")


def step_ticks(low: float, high: float, count: int = 5) -> list[int]:
    """At most about ``count`` round integer positions between ``low`` and ``high`` (steps are
    counts: plotext's own ticks read 2.0e1, 4.7e2)."""
    low, high = math.floor(low), math.ceil(high)
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    spacing = max(1, int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)))
    first = math.ceil(low / spacing) * spacing
    return list(range(first, high + 1, spacing))


def smooth(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average with TensorBoard's start-up debiasing."""
    smoothed, last, count = [], 0.0, 0
    for value in values:
        count += 1
        last = last * weight + (1 - weight) * value
        smoothed.append(last / (1 - weight ** count))
    return smoothed


def thin(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """Average neighbouring points down to at most ``max_points``."""
    if len(xs) <= max_points:
        return xs, ys
    size = math.ceil(len(xs) / max_points)
    out_x, out_y = [], []
    for start in range(0, len(xs), size):
        chunk_x, chunk_y = xs[start:start + size], ys[start:start + size]
        out_x.append(sum(chunk_x) / len(chunk_x))
        out_y.append(sum(chunk_y) / len(chunk_y))
    return out_x, out_y


class MetricChart(Widget):
    """Chart of the series whose names are given (e.g. train/loss and valid/loss).

    A plain Widget rather than a Static: a new drawing has the widget's own size, so it is
    repainted without laying out the whole screen again.
    """

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 6; }
    """
    THEME = "simple"  # plotext theme: colours for the curves only, the frame follows the app theme
    NAMES_IN_TITLE = True  # too small for a legend box: series names go in the title
    LEGEND_BOX = True  # a legend box where the chart is tall enough
    POINTS_AFTER_FIRST = True  # series after the first as x/o points (valid beside train), not lines

    def __init__(self, title: str, names: list[str] | None = None, prefix: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.drawing = Text("")
        self.names = list(names or [])
        self.prefix = prefix  # chart every series starting with it (lr/<scheduler>)
        self.smoothing = False
        self.log_scale = False
        self._drawn_key: tuple | None = None

    def chosen(self, series: dict[str, Series]) -> list[tuple[str, Series]]:
        if self.prefix is not None:
            return [(name.split("/", 1)[1], s) for name, s in sorted(series.items())
                    if name.startswith(self.prefix) and len(s)]
        return [(name, series[name]) for name in self.names if name in series and len(series[name])]

    @property
    def stale(self) -> bool:
        """Drawn at another size than it has now (the layout around it changed)."""
        size = self.content_size
        return self._drawn_key is not None and self._drawn_key[:2] != (size.width, size.height)

    def redraw(self, series: dict[str, Series]) -> bool:
        """Draw again if data, size or toggles changed; returns whether it drew."""
        width, height = self.content_size.width, self.content_size.height
        if width < 20 or height < 5:
            return False
        chosen = self.chosen(series)
        key = (width, height, self.smoothing, self.log_scale,
               tuple((name, s.total_points, s.last) for name, s in chosen))
        if key == self._drawn_key:
            return False
        self._drawn_key = key
        if not chosen:
            self.drawing = Text(f"{self.title}: no data yet", style="dim")
        else:
            self.drawing = Text.from_ansi(self._render_plot(chosen, width, height))
        self.refresh()
        return True

    def render(self) -> Text:
        return self.drawing

    def _render_plot(self, chosen: list[tuple[str, Series]], width: int, height: int) -> str:
        import plotext  # imported on first draw: the console must start without it

        figure = plotext.figure
        figure.clear()
        figure.plot_size(width, height)
        # "simple" leaves the frame and text in the terminal's default colours, which Textual
        # draws in the app theme's own (light or dark); only the curves are coloured.
        figure.theme(self.THEME)
        title = self.title + (" smoothed" if self.smoothing else "") + (" log" if self.log_scale else "")
        drawn = []
        legend = len(chosen) > 1 and height >= LEGEND_MIN_HEIGHT
        for name, series in chosen:
            xs, ys = series.points()
            xs, ys = thin(xs, ys, 2 * width)
            if self.smoothing:
                ys = smooth(ys)
            if self.log_scale:
                kept = [(x, y) for x, y in zip(xs, ys) if y > 0]
                xs, ys = [p[0] for p in kept], [p[1] for p in kept]
            if not xs:
                self._skip_slot(figure)
                continue
            if len(xs) == 1:  # a single point still shows as a dot
                xs, ys = xs * 2, ys * 2
            if not drawn or not self.POINTS_AFTER_FIRST:
                signal = figure.signal(xs, ys, marker="braille")
                signal.lines()
            else:
                signal = figure.signal(xs, ys, marker=POINT_MARKERS[(len(drawn) - 1) % len(POINT_MARKERS)])
            if legend:
                signal.label(name)  # before draw: plotext reads the label as the signal is drawn
            figure.draw(signal)
            drawn.append((name, signal, xs, ys))
        if self.log_scale:
            figure.ruler("y").scale("log")
        if drawn:
            all_x = [x for _, _, xs, _ in drawn for x in xs]
            ticks = step_ticks(min(all_x), max(all_x), count=max(2, min(6, width // 12)))
            figure.ruler("x").ticks(ticks, [short_count(t) for t in ticks])
        if len(drawn) > 1 and self.LEGEND_BOX and height >= LEGEND_MIN_HEIGHT:
            self._place_legend(figure, drawn)
        elif len(drawn) > 1 and self.NAMES_IN_TITLE:
            title += ": " + " · ".join(f"{'━' if index == 0 else POINT_MARKERS[(index - 1) % len(POINT_MARKERS)]} {name}"
                                       for index, (name, *_) in enumerate(drawn))
        figure.title(title)
        return figure.build().string()

    def _skip_slot(self, figure) -> None:
        """A series with nothing to draw; the compare chart keeps its colour slot here."""

    @staticmethod
    def _place_legend(figure, drawn) -> None:
        """Legend in the corner the curves leave empty: top right for falling curves
        (loss), bottom right for rising ones (accuracy)."""
        all_x = [x for _, _, xs, _ in drawn for x in xs]
        all_y = [y for _, _, _, ys in drawn for y in ys]
        first_ys = drawn[0][3]
        falling = first_ys[-1] <= first_ys[0]
        figure.legend(x=max(all_x), y=max(all_y) if falling else min(all_y), ha="right",
                      va="top" if falling else "bottom", relative=True)
