"""Environment screen: what ``asr-train doctor`` reports (versions, install check, cores, GPUs,
NCCL/gloo, espeak-ng, tmux, free disk), for the machine the console runs jobs on.

The facts need torch, which the console never imports: the doctor runs as a child process of
this environment's interpreter, in a thread worker, and its JSON is shown section by section.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, LoadingIndicator, Static

# The doctor imports torch and probes GPUs: generous on a loaded machine, bounded all the same.
DOCTOR_TIMEOUT_S = 180.0


def doctor_argv(runs_root: Path) -> list[str]:
    return [sys.executable, "-m", "engine.train", "doctor", "--json", "--runs-root", str(runs_root)]


def run_doctor(runs_root: Path) -> dict:
    """The doctor's report; raises RuntimeError with its stderr when it cannot give one."""
    try:
        done = subprocess.run(doctor_argv(runs_root), capture_output=True, text=True,
                              timeout=DOCTOR_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"asr-train doctor could not run: {exc}") from None
    try:
        return json.loads(done.stdout)
    except ValueError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"asr-train doctor exited {done.returncode}: " + " | ".join(tail)) from None


def _cell(value) -> Text:
    if isinstance(value, bool):
        return Text("yes" if value else "no", style="green" if value else "yellow")
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, dict):
        return Text(", ".join(f"{k} {_cell(v).plain}" for k, v in value.items()))
    return Text(str(value))


def section_table(name: str, facts) -> Table:
    table = Table(title=name, title_justify="left", title_style="bold", show_header=False, box=None,
                  padding=(0, 1), expand=True)
    table.add_column(style="cyan", no_wrap=True, ratio=1)
    table.add_column(ratio=3, overflow="fold")
    if not isinstance(facts, dict):
        facts = {"value": facts}
    for key, value in facts.items():
        if key == "devices" and isinstance(value, list):
            if not value:
                table.add_row("devices", _cell("none"))
            for device in value:
                table.add_row(f"cuda:{device.get('index')}", _cell(
                    f"{device.get('name')}, {device.get('memory_gib')} GiB, compute capability "
                    f"{device.get('compute_capability')}, bf16 {'yes' if device.get('bf16') else 'no'}"))
            continue
        style = "bold red" if key in ("error", "fix") or (key == "ok" and value is False) else ""
        cell = _cell(value)
        cell.stylize(style)
        table.add_row(key, cell)
    return table


class EnvironmentScreen(Screen):
    """The doctor's report; r runs it again, Escape goes back."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "refresh", "Run again"),
        Binding("y", "copy", "Copy as JSON"),
    ]

    report: reactive[dict | None] = reactive(None, init=False)
    error: reactive[str] = reactive("", init=False)

    def __init__(self, runs_root: Path | None = None) -> None:
        super().__init__()
        self.runs_root = runs_root

    def compose(self) -> ComposeResult:
        yield Header()
        yield LoadingIndicator(id="environment-loading")
        with VerticalScroll(id="environment-body"):
            yield Static(id="environment-report")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Environment"
        if self.runs_root is None:
            self.runs_root = getattr(self.app, "runs_root", Path("exp"))
        self.action_refresh()

    def action_refresh(self) -> None:
        self.query_one("#environment-loading").display = True
        self._run()

    @work(thread=True, exclusive=True, group="doctor")
    def _run(self) -> None:
        try:
            report, error = run_doctor(self.runs_root), ""
        except RuntimeError as exc:
            report, error = None, str(exc)
        self.app.call_from_thread(self._done, report, error)

    def _done(self, report: dict | None, error: str) -> None:
        self.query_one("#environment-loading").display = False
        self.error = error
        self.report = report

    def watch_report(self, report: dict | None) -> None:
        if report is not None:
            tables = [section_table(name, facts) for name, facts in report.items()]
            grid = Table.grid(expand=True)
            for table in tables:
                grid.add_row(table)
            self.query_one("#environment-report", Static).update(grid)

    def watch_error(self, error: str) -> None:
        if error:
            self.query_one("#environment-report", Static).update(Text(error, style="bold red"))

    def action_copy(self) -> None:
        if self.report is not None:
            self.app.copy_to_clipboard(json.dumps(self.report, indent=1))
            self.notify("environment report copied (JSON)")
