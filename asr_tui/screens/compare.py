"""Compare screen: two or more runs' curves on shared axes, their best figures and config diff.

Opened from the runs list (mark runs with space, then ``v``) or the command palette; its entry
point is ``CompareScreen(run_dirs)``. The runs are read in a thread worker
(:func:`asr_tui.compare.load_runs`: the monitor's sampled history scan, so big logs are quick);
``g`` reads them again (a running run moves on). The x axis is the update count or the hours
since each run's first event (``t``).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from asr_tui.compare import STEP, TIME, ComparedRun, best_rows, config_diff, load_runs
from asr_tui.presets_store import short_value
from asr_tui.run_state import Series
from asr_tui.widgets.compare_chart import CompareChart, run_style
from asr_tui.widgets.row_table import RowTable

# (chart id, title, series name); "lr" takes each run's first scheduler, "valid" follows `v`.
CHARTS = (("cmp-loss", "train loss", "train/loss"), ("cmp-acc", "train acc", "train/acc"),
          ("cmp-lr", "lr", "lr"), ("cmp-valid", "valid", "valid"))
BEST_COLUMNS = ("run", "status", "steps", "train loss", "best v.acc", "best v.loss", "best CER", "decode")


class CompareScreen(Screen):
    """Curves, best figures and config diff of ``run_dirs`` (two or more)."""

    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("1", "tab('curves')", "Curves"),
        Binding("2", "tab('best')", "Best"),
        Binding("3", "tab('config')", "Config diff"),
        Binding("t", "toggle_axis", "Step/time"),
        Binding("v", "toggle_valid", "Valid acc/loss"),
        Binding("m", "toggle_smoothing", "Smooth"),
        Binding("l", "toggle_log_scale", "Log y"),
        Binding("g", "reload", "Reload"),
    ]

    axis: reactive[str] = reactive(STEP, init=False)
    valid_metric: reactive[str] = reactive("acc", init=False)

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = [Path(d) for d in run_dirs]
        self.runs: list[ComparedRun] = []
        self.loaded = False
        self.load_seconds: float | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-legend")
        with TabbedContent(id="compare-tabs", initial="curves"):
            with TabPane("Curves", id="curves"):
                with Grid(id="compare-grid"):
                    for chart_id, title, metric in CHARTS:
                        yield CompareChart(title, metric, id=chart_id)
            with TabPane("Best", id="best"):
                with Vertical():
                    yield RowTable(id="compare-best")
                    yield Static(id="compare-notes")
            with TabPane("Config diff", id="config"):
                with Vertical():
                    yield Static(id="compare-diff-title")
                    yield RowTable(id="compare-diff")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Compare {len(self.run_dirs)} runs"
        self.query_one("#compare-legend", Static).update(
            Text(f"reading {len(self.run_dirs)} runs …", style="dim"))
        best = self.query_one("#compare-best", DataTable)
        for column in BEST_COLUMNS:
            best.add_column(column, key=column)
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="compare-load")
    def _load(self) -> None:
        started = time.perf_counter()
        runs = load_runs(self.run_dirs)
        import plotext  # noqa: F401  (first draw follows at once: import it off the UI thread)

        self.app.call_from_thread(self._show, runs, time.perf_counter() - started)

    def _show(self, runs: list[ComparedRun], seconds: float) -> None:
        self.runs, self.loaded, self.load_seconds = runs, True, seconds
        self._show_legend()
        self._show_best()
        self._show_diff()
        self._draw_charts(again=True)

    # Panels.

    def _show_legend(self) -> None:
        text = Text("x: " + ("update step" if self.axis == STEP else "hours since start") + "  ", style="dim")
        for index, run in enumerate(self.runs):
            text.append("━━ ", style=run_style(index))
            text.append(run.label, style=run_style(index))
            text.append(f" ({run.status})  ", style="dim")
        self.query_one("#compare-legend", Static).update(text)

    def _show_best(self) -> None:
        table = self.query_one("#compare-best", DataTable)
        table.clear()
        for index, row in enumerate(best_rows(self.runs)):
            cells = [Text(row["run"], style=run_style(index))] + [row[c] for c in BEST_COLUMNS[1:]]
            table.add_row(*cells, key=str(index))
        notes = Text()
        for run in self.runs:
            if run.bad_lines:
                notes.append(f"{run.label}: {run.bad_lines} malformed event line(s) skipped\n", style="yellow")
            for problem in run.problems:
                notes.append(f"{run.label}: {problem}\n", style="yellow")
            if not run.decodes:
                notes.append(f"{run.label}: no decode yet (checkpoints screen, d)\n", style="dim")
        notes.rstrip()
        self.query_one("#compare-notes", Static).update(notes)

    def _show_diff(self) -> None:
        rows = config_diff([run.config for run in self.runs])
        table = self.query_one("#compare-diff", DataTable)
        table.clear(columns=True)
        table.add_column("key", key="key")
        for index, run in enumerate(self.runs):
            table.add_column(Text(run.label, style=run_style(index)), key=f"run{index}")
        for key, values in rows:
            table.add_row(key, *(short_value(v, 28) for v in values), key=key)
        missing = [run.label for run in self.runs if not run.config]
        title = f"{len(rows)} config key(s) differ (output_dir left out)"
        if missing:
            title += f"; no config.yaml nor start event in {', '.join(missing)}"
        self.query_one("#compare-diff-title", Static).update(title)

    # Charts.

    def chart_series(self, metric: str) -> dict[str, Series]:
        """{run label: Series} of ``metric`` on the current axis; an empty Series keeps a run's colour."""
        found: dict[str, Series] = {}
        for run in self.runs:
            name = metric
            if metric == "lr":
                lrs = run.lr_names()
                name = lrs[0] if lrs else "lr/lr"
            elif metric == "valid":
                name = f"valid/{self.valid_metric}"
            found[run.label] = run.series(name, self.axis) or Series(4)
        return found

    def _draw_charts(self, again: bool = False) -> None:
        if not self.loaded or self.query_one(TabbedContent).active != "curves":
            return
        for chart in self.query(CompareChart):
            if again:  # other series under the same names: the chart cannot tell by itself
                chart._drawn_key = None
            if chart.metric == "valid":
                chart.title = f"valid {self.valid_metric}"
            chart.redraw(self.chart_series(chart.metric))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if self.query_one(TabbedContent).active == "curves":
            self.call_after_refresh(self._draw_charts)

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw_charts)

    def watch_axis(self) -> None:
        self._show_legend()
        self._draw_charts(again=True)

    def watch_valid_metric(self) -> None:
        self._draw_charts(again=True)

    # Actions.

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_toggle_axis(self) -> None:
        self.axis = TIME if self.axis == STEP else STEP

    def action_toggle_valid(self) -> None:
        self.valid_metric = "loss" if self.valid_metric == "acc" else "acc"

    def action_toggle_smoothing(self) -> None:
        for chart in self.query(CompareChart):
            chart.smoothing = not chart.smoothing
        self._draw_charts()

    def action_toggle_log_scale(self) -> None:
        for chart in self.query(CompareChart):
            chart.log_scale = not chart.log_scale
        self._draw_charts()
