"""Monitor screen: follow one run live, or browse the whole history of a finished one.

A thread worker polls the run (new events, new log lines, liveness) every second; the
screen folds what it brings into the progress line, the rank table and the log, and redraws
the charts at most every two seconds, only while they are on show. Text panels are updated
only when their text changed: each update of a Static lays the screen out again.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Header, Log, ProgressBar, Static, TabbedContent, TabPane

from asr_tui.messages import OpenCheckpoints, ResumeRequested, RunStopRequested
from asr_tui.run_state import CRASHED, FAILED, FINISHED, RUNNING, STOPPED, learning_rates, loss_terms, number
from asr_tui.runs_store import RunJsonError, process_alive, read_run_json, run_status
from asr_tui.screens.shown import on_show
from asr_tui.tailer import FollowUpdate, RunFollower
from asr_tui.widgets.chart import MetricChart
from asr_tui.widgets.footer import Footer
from asr_tui.widgets.health_line import HealthLine
from asr_tui.widgets.rank_table import RankTable
from asr_tui.widgets.resources import ResourcesGrid

POLL_SECONDS = 1.0
CHART_SECONDS = 2.0


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def data_text(data: dict[str, dict]) -> Text:
    """The `data` events: per split, utterances, hours and what was dropped and why."""
    if not data:
        return Text("data: not read yet", style="dim")
    text = Text()
    for split, event in data.items():
        text.append(f"{split}: ", style="bold")
        parts = []
        if isinstance(event.get("utterances"), int):
            parts.append(f"{event['utterances']} utts")
        if isinstance(event.get("hours"), (int, float)):
            parts.append(f"{event['hours']:.2f} h")
        oov = event.get("oov")
        if isinstance(oov, dict) and oov.get("texts") and oov.get("of_texts"):
            parts.append(f"{oov['texts']} texts ({100 * oov['texts'] / oov['of_texts']:.0f}%) with <unk>")
        dropped = event.get("dropped")
        if isinstance(dropped, dict) and any(dropped.values()):
            parts.append("dropped " + ", ".join(f"{count} {why}" for why, count in dropped.items() if count))
        else:
            parts.append("none dropped")
        text.append("  ".join(parts) + "\n")
    text.rstrip()
    return text


def _numbers(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v:.3g}" for k, v in value.items() if isinstance(v, (int, float)))
    return f"{value:.4g}" if isinstance(value, (int, float)) else ""


def train_text(event: dict | None, valid: dict | None) -> Text:
    text = Text()
    if event:
        terms = "  ".join(f"{k} {v:.4f}" for k, v in loss_terms(event).items())
        text.append("train  ", style="bold")
        text.append(terms)
        for key, label in (("acc", "acc"), ("grad_norm", "grad"), ("throughput", "thr"),
                           ("padding_ratio", "pad")):
            shown = _numbers(event.get(key))
            if shown:
                text.append(f"  {label} {shown}")
        lrs = learning_rates(event)
        if lrs:
            text.append("\nlr     ", style="bold")
            text.append("  ".join(f"{name} {lr:.3e}" for name, lr in lrs.items()))
    if valid:
        text.append("\nvalid  ", style="bold")
        text.append("  ".join(f"{k} {v:.4f}" for k, v in loss_terms(valid).items()))
        acc = number(valid, "acc")
        if acc is not None:
            text.append(f"  acc {acc:.4f}")
    return text or Text("no train event yet", style="dim")


class MonitorScreen(Screen):
    """Progress, per-rank table, charts and log of one run."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("c", "checkpoints", "Checkpoints"),
        Binding("1", "tab('overview')", "Overview"),
        Binding("2", "tab('charts')", "Charts"),
        Binding("3", "tab('log')", "Log"),
        Binding("4", "tab('resources')", "Resources"),
        Binding("m", "toggle_smoothing", "Smooth"),
        Binding("l", "toggle_log_scale", "Log y"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.follower = RunFollower(self.run_dir)
        self.status = RUNNING
        self.reason = ""
        self._charts_due = True
        self.attached = False
        self.attach_seconds: float | None = None
        self._polling = False
        self._shown_text: dict[str, Text] = {}
        self._overview_due = True

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="monitor-status")
        yield ProgressBar(id="monitor-progress", show_eta=False)
        yield HealthLine(id="monitor-health")
        with TabbedContent(id="monitor-tabs", initial="overview"):
            with TabPane("Overview", id="overview"):
                with Vertical():
                    yield Static(id="monitor-error")
                    yield RankTable(id="rank-table")
                    yield Static(id="monitor-train")
                    yield Static(id="monitor-data")
                    yield Static(id="monitor-checkpoints")
            with TabPane("Charts", id="charts"):
                with Grid(id="chart-grid"):
                    yield MetricChart("loss", ["train/loss", "valid/loss"], id="chart-loss")
                    yield MetricChart("acc", ["train/acc", "valid/acc"], id="chart-acc")
                    yield MetricChart("lr", prefix="lr/", id="chart-lr")
            with TabPane("Log", id="log"):
                yield Log(id="monitor-log", max_lines=1000)
            with TabPane("Resources", id="resources"):
                yield ResourcesGrid(id="resources-grid")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Monitor {self.run_dir.name}"
        self.query_one("#monitor-status", Static).update(f"attaching to {self.run_dir} …")
        self.query_one("#monitor-error", Static).display = False
        # Hidden until the total is known: a ProgressBar without one animates (and repaints) forever.
        self.query_one(ProgressBar).display = False
        # Attach once the screen is painted: mounting and the history scan would otherwise
        # share the GIL and both take longer.
        self.call_after_refresh(self._request_poll)
        self.set_interval(POLL_SECONDS, self._request_poll)
        self.set_interval(CHART_SECONDS, self._chart_tick)

    @work(thread=True, group="monitor-preload")
    def _preload_plotext(self) -> None:
        """plotext takes a while to import: do it off the UI thread before the charts are shown."""
        import plotext  # noqa: F401

    def _request_poll(self) -> None:
        # One poll at a time: a slow attach must not overlap the next tick's read.
        if not self._polling:
            self._polling = True
            self._poll()

    @work(thread=True, group="monitor-poll")
    def _poll(self) -> None:
        try:
            self._poll_once()
        finally:
            self._polling = False

    def _poll_once(self) -> None:
        if not self.attached:
            started = time.perf_counter()
            self.follower.attach()
            update = FollowUpdate()
            self.attach_seconds = time.perf_counter() - started
        else:
            update = self.follower.poll()
        try:
            record, record_error = read_run_json(self.run_dir), ""
        except RunJsonError as exc:
            record, record_error = None, str(exc)
        status, reason = run_status(self.follower.state, record, process_alive(record), run_dir=self.run_dir)
        if record_error:
            reason = f"{record_error}; {reason}" if reason else record_error
        self.app.call_from_thread(self._show, update, status, reason)

    def _show(self, update: FollowUpdate, status: str, reason: str) -> None:
        if not self.is_attached or not self.query("#monitor-status"):
            return  # closed (or replaced) while the poll worker read the run
        first = not self.attached
        self.attached = True
        changed = first or bool(update) or (status, reason) != (self.status, self.reason)
        self.status, self.reason = status, reason
        tab = self.query_one(TabbedContent).active
        if update.log_lines and tab == "log":
            self.query_one("#monitor-log", Log).write_lines(update.log_lines)
        # Judged at every poll, news or not: a stall is the absence of news.
        for line in self.query(HealthLine):  # none while the screen is being taken down
            line.show(self.follower, running=status == RUNNING)
        if not changed:
            return
        self._show_status()
        self._overview_due = True
        if tab == "overview":
            self._show_overview()
        self._charts_due = True
        if first:
            self._draw_charts()
            self._preload_plotext()  # after the attach, not competing with it

    def _show_overview(self) -> None:
        """Rank table, train/valid numbers, data counts, checkpoints and any error."""
        self._overview_due = False
        with self.follower.lock:  # the poll worker changes the state's dicts and lists
            self._show_overview_locked()

    def _show_overview_locked(self) -> None:
        state = self.follower.state
        if state.last_train and isinstance(state.last_train.get("ranks"), list):
            self.query_one(RankTable).show(state.last_train["ranks"])
        self._set_text("#monitor-train", train_text(state.last_train, state.last_valid))
        self._set_text("#monitor-data", data_text(state.data))
        self._show_checkpoints()
        self._show_error()

    def _show_log(self) -> None:
        """The Log tab is filled when shown, from the follower's bounded line buffer."""
        log = self.query_one("#monitor-log", Log)
        log.clear()
        with self.follower.lock:
            lines = list(self.follower.log.lines) if self.follower.log is not None else []
        log.write_lines(lines)

    def _set_text(self, selector: str, text: Text) -> None:
        """Update a Static only when its text changed (each update lays the screen out)."""
        previous = self._shown_text.get(selector)
        if previous == text:
            return
        self._shown_text[selector] = text
        widget = self.query_one(selector, Static)
        # Same number of lines, none wider than the widget: the height cannot change.
        lines = text.plain.split("\n")
        same_height = (previous is not None and len(lines) == len(previous.plain.split("\n"))
                       and max(map(len, lines)) <= widget.content_size.width)
        widget.update(text, layout=not same_height)

    def _show_status(self) -> None:
        with self.follower.lock:
            self._show_status_locked()

    def _show_status_locked(self) -> None:
        state = self.follower.state
        bar = self.query_one(ProgressBar)
        if state.total_steps:
            bar.update(total=state.total_steps, progress=state.step or 0)
            bar.display = True
        text = Text(f"{self.run_dir.name}  ", style="bold")
        text.append(self.status, style={"running": "bold green", "finished": "bold cyan",
                                        "stopped": "yellow"}.get(self.status, "bold red"))
        if state.epoch is not None:
            text.append(f"  epoch {state.epoch}/{state.max_epoch or '?'}")
        if state.step is not None:
            text.append(f"  step {state.step}/{state.total_steps or '?'}")
        if self.status == RUNNING:
            rate = state.steps_per_second()
            if rate:
                text.append(f"  {rate:.2f} step/s  ETA {format_duration(state.eta_seconds())}")
        if state.start:
            world = state.start.get("world_size")
            params = state.start.get("num_params")
            if world:
                text.append(f"  world {world}")
            if isinstance(params, (int, float)):
                text.append(f"  {params / 1e6:.1f}M params")
        if self.reason:
            # the end reason: why it stopped early (patience) reads as news, a failure as an alarm
            style = {RUNNING: "dim", FINISHED: "green", STOPPED: "yellow"}.get(self.status, "red")
            text.append(f"\n{self.reason}", style=style)
        if self.follower.bad_lines:
            text.append(f"\n{self.follower.bad_lines} malformed event line(s) skipped in "
                        f"{self.follower.events_path.name}", style="yellow")
        self._set_text("#monitor-status", text)

    def _show_checkpoints(self) -> None:
        state = self.follower.state
        if not state.checkpoints and not state.averages:
            self._set_text("#monitor-checkpoints", Text())
            return
        text = Text()
        if state.checkpoints:
            last = state.checkpoints[-1]
            text.append("checkpoints ", style="bold")
            text.append(f"{len(state.checkpoints)} saved, last {Path(str(last.get('path', ''))).name}")
        if state.averages:
            text.append(f"  averaged {Path(str(state.averages[-1].get('path', ''))).name}")
        self._set_text("#monitor-checkpoints", text)

    def _show_error(self) -> None:
        """A dead job shows its error event and the tail of console.log."""
        panel = self.query_one("#monitor-error", Static)
        state = self.follower.state
        if self.status not in (CRASHED, FAILED):
            if panel.display:
                panel.display = False
            return
        text = Text()
        if state.errors:
            error = state.errors[-1]
            text.append(f"error on rank {error.get('rank', '?')}: {error.get('message', '')}\n", style="bold red")
            traceback = str(error.get("traceback") or "").rstrip().splitlines()
            for line in traceback[-6:]:
                text.append(line + "\n", style="red")
        else:
            text.append(f"{self.status}: {self.reason}\n", style="bold red")
        tail = list(self.follower.log.lines)[-8:] if self.follower.log else []
        if tail:
            text.append(f"--- tail of {self.follower.log.path.name} ---\n", style="dim")
            text.append("\n".join(tail))
        self._set_text("#monitor-error", text)
        panel.display = True

    def _chart_tick(self) -> None:
        self._draw_charts(tick=True)

    def _draw_charts(self, tick: bool = False) -> None:
        if not on_show(self):  # under Compare or the checkpoints: drawn when back on show
            return
        tab = self.query_one(TabbedContent).active
        if tab not in ("charts", "resources"):
            return
        charts = [chart for chart in self.query_one(f"#{tab}", TabPane).query(MetricChart) if chart.display]
        resized = any(chart.stale for chart in charts)  # its layout changed since it was drawn
        if not (self._charts_due or resized):
            return
        if tab == "resources":
            with self.follower.lock:
                if self.query_one(ResourcesGrid).show_present(self.follower.state.series):
                    return  # charts shown or hidden: the next tick draws the new layout
            if tick and not resized and not self.query_one(ResourcesGrid).due():
                return  # resource figures change slowly: redrawn less often than the metrics
        if any(not chart.size.width for chart in charts):
            return  # the tab is not laid out yet: the next tick draws it
        self._charts_due = False
        with self.follower.lock:  # the poll worker may be appending to the series
            for chart in charts:
                chart.redraw(self.follower.state.series)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = self.query_one(TabbedContent).active
        if tab == "overview" and self._overview_due and self.attached:
            self._show_overview()
        elif tab == "log":
            self._show_log()
        elif tab in ("charts", "resources"):
            self._charts_due = True
            self.call_after_refresh(self._draw_charts)

    def on_resize(self) -> None:
        self._charts_due = True

    def on_screen_resume(self) -> None:
        """Back on show (Compare or the checkpoints closed): charts not drawn meanwhile catch up."""
        if self.attached:
            self._charts_due = True
            self.call_after_refresh(self._draw_charts)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_toggle_smoothing(self) -> None:
        for chart in self.query(MetricChart):
            chart.smoothing = not chart.smoothing
        self.notify("smoothing " + ("on" if chart.smoothing else "off"))
        self._charts_due = True
        self._draw_charts()

    def action_toggle_log_scale(self) -> None:
        for chart in self.query(MetricChart):
            chart.log_scale = not chart.log_scale
        self.notify("log scale " + ("on" if chart.log_scale else "off"))
        self._charts_due = True
        self._draw_charts()

    def action_stop(self) -> None:
        if self.status != RUNNING:
            self.notify(f"the job is {self.status}, not running", severity="warning")
            return
        self.post_message(RunStopRequested(self.run_dir))

    def action_resume(self) -> None:
        """Resume from the latest full state (model.pt) of a run that is not running."""
        if self.status == RUNNING:
            self.notify("the job is still running", severity="warning")
            return
        latest = self.run_dir / "model.pt"
        if not latest.exists():
            self.notify(f"{latest} does not exist: pick a checkpoint with c", severity="error")
            return
        self.post_message(ResumeRequested(self.run_dir, latest))

    def action_checkpoints(self) -> None:
        self.post_message(OpenCheckpoints(self.run_dir))
