"""Monitor charts: integer step ticks, series told apart without colour, the app's theme."""

from __future__ import annotations

import re

from textual.app import App, ComposeResult

from asr_tui.run_state import Series
from asr_tui.widgets.chart import MetricChart, step_ticks


def series(points: list[tuple[int, float]]) -> Series:
    built = Series()
    for x, y in points:
        built.add(x, y)
    return built


LOSS = {"train/loss": series([(step, 3.0 - step / 400) for step in range(20, 700, 10)]),
        "valid/loss": series([(step, 3.1 - step / 400) for step in range(50, 700, 50)])}


class ChartApp(App):
    def __init__(self, theme: str) -> None:
        super().__init__()
        self.chart_theme = theme

    def compose(self) -> ComposeResult:
        yield MetricChart("loss", ["train/loss", "valid/loss"], id="chart")

    def on_mount(self) -> None:
        self.theme = self.chart_theme


def test_step_ticks_are_round_integers():
    assert step_ticks(20, 690) == [200, 400, 600]
    assert step_ticks(20.4, 690.2, count=8) == [100, 200, 300, 400, 500, 600]
    assert step_ticks(1, 3) == [1, 2, 3]
    assert step_ticks(5, 5) == [5]


async def test_chart_axis_markers_and_theme(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    for theme in ("textual-light", "textual-dark"):
        app = ChartApp(theme)
        async with app.run_test(size=(80, 24)) as pilot:
            chart = app.query_one(MetricChart)
            await pilot.pause()
            assert chart.redraw(LOSS)
            text = chart.drawing.plain
            tick_line = [line for line in text.splitlines() if re.search(r"\d", line)][-1]
            assert re.fullmatch(r"[\d\s]+", tick_line.strip()), tick_line  # 200 400 600, no 2.0e1
            assert not re.search(r"\d\.\d", tick_line)
            assert any("\u2800" <= ch <= "\u28ff" for ch in text)  # train: a braille line
            assert "x valid/loss" in text and "train/loss" in text  # valid: x points, named
            # No colour of its own behind the frame: the app theme's background shows through.
            assert all(span.style.bgcolor is None for span in chart.drawing.spans
                       if hasattr(span.style, "bgcolor"))
