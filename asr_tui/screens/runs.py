"""Runs screen: every run under the runs root, its status, progress and last metrics."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from asr_tui.health import marker
from asr_tui.messages import CompareRequested, OpenCheckpoints, OpenRun, RunStopRequested
from asr_tui.runs_store import RunsStore, RunSummary
from asr_tui.screens.shown import on_show
from asr_tui.widgets.footer import Footer
from asr_tui.widgets.row_table import RowTable

STATUS_STYLE = {
    "running": "bold green", "finished": "bold cyan", "stopped": "yellow",
    "failed": "bold red", "crashed": "bold red",
}
REFRESH_SECONDS = 2.0
# plotext is imported this long after the list is first shown: late enough not to slow the
# first frame, soon enough that the monitor's and Compare's first charts need not wait for it.
PRELOAD_SECONDS = 1.0


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def progress_text(summary: RunSummary) -> str:
    if summary.progress is None:
        return "-" if summary.step is None else f"step {summary.step}"
    return f"{summary.progress * 100:5.1f}% {summary.step}/{summary.total_steps}"


def metrics_text(summary: RunSummary) -> str:
    shown = []
    for key, label in (("loss", "loss"), ("acc", "acc"), ("valid_acc", "v.acc")):
        if key in summary.metrics:
            shown.append(f"{label} {summary.metrics[key]:.3f}")
    return "  ".join(shown) or "-"


def ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, int(seconds))}s ago"
    if seconds < 5400:
        return f"{int(seconds // 60)} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{int(seconds // 86400)} days ago"


def started_text(summary: RunSummary) -> str:
    if not summary.start_time:
        return "-"
    return time.strftime("%m-%d %H:%M", time.localtime(summary.start_time))


class RunsScreen(Screen):
    """Lists runs; Enter opens the monitor, c the checkpoints, x stops a running job, space
    marks runs and v compares the marked ones."""

    BINDINGS = [
        Binding("enter", "open_run", "Monitor", priority=False),
        Binding("c", "open_checkpoints", "Checkpoints"),
        Binding("x", "stop_run", "Stop"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("v", "compare", "Compare marked"),
        Binding("g", "refresh", "Refresh"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.store = RunsStore(self.root)
        self.summaries: dict[str, RunSummary] = {}
        self.marked: list[str] = []  # run directories marked for Compare, in marking order
        self._rows: list[tuple] = []
        self._marks_shown: list[str] = []
        self._preloaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="runs-root")
        yield RowTable(id="runs-table")
        yield Static(id="runs-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        table = self.query_one("#runs-table", DataTable)
        # metrics, the widest column, goes last: at 80 columns the rest stays in view
        for label, key in (("run", "run"), ("status", "status"), ("health", "health"), ("progress", "progress"),
                           ("epoch", "epoch"), ("started", "started"), ("by", "by"),
                           ("metrics", "metrics")):
            table.add_column(label, key=key)
        self.query_one("#runs-root", Static).update(
            f"Runs under {self.root.resolve()}  ·  Enter: monitor  ·  space: mark, v: compare")
        self._scan()  # once even when covered (the app may open on the form): the palette lists the runs
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        if on_show(self):  # not while the monitor or Compare covers the list
            self._scan()

    def _preload_plotext(self) -> None:
        if on_show(self):  # a screen above imports it itself, when it has drawn what it shows
            self._import_plotext()

    @work(thread=True, group="runs-preload")
    def _import_plotext(self) -> None:
        """plotext takes about 0.25 s to import: done once the list is shown, so the monitor's
        and Compare's first charts do not wait for it."""
        import plotext  # noqa: F401

    @work(thread=True, exclusive=True, group="runs-scan")
    def _scan(self) -> None:
        summaries = self.store.scan()
        self.app.call_from_thread(self._show, summaries)

    def _show(self, summaries: list[RunSummary]) -> None:
        if not self._preloaded:
            self._preloaded = True
            self.set_timer(PRELOAD_SECONDS, self._preload_plotext)
        self.summaries = {str(s.run_dir): s for s in summaries}
        self.marked = [key for key in self.marked if key in self.summaries]
        rows = [self._row(summary) for summary in summaries]
        # Rebuilt only when something changed: the list refreshes every 2 s.
        if rows != self._rows or self._marks_shown != self.marked:
            self._marks_shown = list(self.marked)
            self._rows = rows
            table = self.query_one("#runs-table", DataTable)
            selected = self.selected_key()
            table.clear()
            for summary, row in zip(summaries, rows):
                table.add_row(*row, key=str(summary.run_dir), label=self._mark(str(summary.run_dir)))
            if selected in table.rows:  # it may be filtered out
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        if not summaries:
            self.query_one("#runs-detail", Static).update(
                f"No runs under {self.root}. Press n to set up a run, p for presets.")
        else:
            self._show_detail()

    def _mark(self, key: str) -> Text:
        """The row label: ● marked for Compare (its number in marking order), ○ not."""
        if key in self.marked:
            return Text(f"●{self.marked.index(key) + 1}", style="bold green")
        return Text("○ ", style="dim")

    @staticmethod
    def _row(summary: RunSummary) -> tuple:
        epoch = "-" if summary.epoch is None else f"{summary.epoch}/{summary.max_epoch or '?'}"
        return (summary.name, status_text(summary.status), Text(marker(summary.health), style="bold yellow"),
                progress_text(summary), epoch, started_text(summary), summary.launched_by or "script",
                metrics_text(summary))

    def selected_key(self) -> str | None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # the cursor is outside the rows while the table is rebuilt
            return None

    def selected(self) -> RunSummary | None:
        key = self.selected_key()
        return self.summaries.get(key) if key else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def _show_detail(self) -> None:
        summary = self.selected()
        detail = self.query_one("#runs-detail", Static)
        if summary is None:
            detail.update("")
            return
        text = Text(str(summary.run_dir))
        if summary.host:
            text.append(f"  ·  {summary.host}")
        if summary.last_event_time:
            text.append(f"  ·  last event {ago(time.time() - summary.last_event_time)}")
        if summary.lock_holder:
            text.append(f"  ·  held by {summary.lock_holder}")
        if summary.reason:
            text.append(f"\n{summary.status}: {summary.reason}", style=STATUS_STYLE.get(summary.status, ""))
        for finding in summary.health[:2]:
            text.append(f"\n⚠ {finding.message}", style="yellow")
        detail.update(text)

    def action_open_run(self) -> None:
        summary = self.selected()
        if summary is not None:
            self.post_message(OpenRun(summary.run_dir))

    def action_open_checkpoints(self) -> None:
        summary = self.selected()
        if summary is not None:
            self.post_message(OpenCheckpoints(summary.run_dir))

    def action_stop_run(self) -> None:
        summary = self.selected()
        if summary is None:
            return
        if summary.status != "running":
            self.notify(f"{summary.name} is {summary.status}, not running", severity="warning")
            return
        self.post_message(RunStopRequested(summary.run_dir))

    def action_toggle_mark(self) -> None:
        """Mark or unmark the selected run for Compare; the cursor moves on, as in a file manager."""
        key = self.selected_key()
        if key is None:
            return
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked.append(key)
        table = self.query_one("#runs-table", DataTable)
        row = table.cursor_row
        self._show(list(self.summaries.values()))  # row labels change only by adding the rows again
        if row < table.row_count - 1:
            table.move_cursor(row=row + 1, animate=False)

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more runs with space, then press v", severity="warning")
            return
        self.post_message(CompareRequested([Path(key) for key in self.marked]))
