"""Check the data lists of the form with ``asr-data stats LIST --json`` and show what they hold.

The check runs the data engine's own CLI as a subprocess (reading a large list and probing its
audio takes a while and imports torch; neither may block the console), one list kind at a time,
and shows utterances, hours, what would be dropped and why, and a duration histogram.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, Static
from textual.worker import get_current_worker

DEBOUNCE_S = 1.0
LIST_LABELS = {"train_data_set_list": "train", "valid_data_set_list": "valid", "test_data_set_list": "test"}


def asr_data_command() -> list[str]:
    """The ``asr-data`` console script of this environment (beside the interpreter), else on PATH."""
    beside = Path(sys.executable).parent / "asr-data"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("asr-data")
    if found:
        return [found]
    return [sys.executable, "-m", "engine.data.cli"]


def run_stats(paths: list[str], should_stop=lambda: False, poll_s: float = 0.1) -> dict:
    """``asr-data stats PATHS --json`` -> its JSON; raises RuntimeError with its stderr on failure."""
    argv = asr_data_command() + ["stats", *paths, "--json"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        while True:
            try:
                out, err = process.communicate(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                if should_stop():
                    process.kill()
                    process.communicate()
                    raise RuntimeError("check cancelled") from None
    if process.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"asr-data stats exited with {process.returncode}")
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"asr-data stats printed no JSON ({exc})") from None


def summary_line(label: str, stats: dict) -> Text:
    """``train: 1,234 utts · 2.05 h · dropped 3 (too_long 2, bad_audio 1)``."""
    hours = stats.get("hours")
    if hours is None and "seconds" in stats:
        hours = stats["seconds"] / 3600.0
    line = Text(f"{label}: {stats.get('utterances', 0):,} utts · {float(hours or 0):.2f} h")
    dropped = stats.get("dropped") or {}
    total = stats.get("num_dropped", sum(dropped.values()))
    if total:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(dropped.items()))
        line.append(f" · dropped {total:,} ({reasons})", style="bold yellow")
    else:
        line.append(" · nothing dropped", style="green")
    return line


def histogram_lines(histogram: dict, width: int) -> list[str]:
    """A text bar per duration bin: ``  2- 4s ████████ 812``."""
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    if not counts or len(edges) != len(counts) + 1:
        return []
    peak = max(counts) or 1
    bar_width = max(width - 22, 5)
    lines = []
    for low, high, count in zip(edges, edges[1:], counts):
        bar = "█" * round(bar_width * count / peak)
        lines.append(f"{low:>5.1f}-{high:<5.1f}s {bar} {count}")
    return lines


class DataCheck(Vertical):
    """Runs and shows the checks of the train/valid/test lists."""

    DEFAULT_CSS = """
    DataCheck { height: auto; margin: 1 0 0 0; }
    DataCheck > Horizontal { height: auto; }
    DataCheck #data-status { width: 1fr; color: $text-muted; padding: 0 0 0 1; }
    DataCheck #data-report { height: auto; }
    """

    class Checked(Message):
        """One list kind was checked: ``stats`` is the JSON of ``asr-data stats`` (None on failure)."""

        def __init__(self, list_key: str, stats: dict | None, error: str | None) -> None:
            super().__init__()
            self.list_key = list_key
            self.stats = stats
            self.error = error

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lists: dict[str, list[str]] = {}
        self.results: dict[str, dict | str] = {}
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Button("Check lists", id="data-check-button", compact=True)
            yield Static("checks utterances, hours, drops and durations of each list", id="data-status")
        yield Static("", id="data-report")

    def request(self, lists: dict[str, list[str]], now: bool = False) -> None:
        """Check these lists (``{config key: paths}``) after a pause in typing, or ``now``."""
        self.lists = {key: list(paths) for key, paths in lists.items() if paths}
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0 if now else DEBOUNCE_S, self._start)

    @on(Button.Pressed, "#data-check-button")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.request(self.lists, now=True)

    def _start(self) -> None:
        self._timer = None
        if not self.lists:
            self.query_one("#data-status", Static).update("no lists to check")
            return
        self.results = {}
        self._show()
        self.run_worker(self._check_all, thread=True, exclusive=True, group="data-check", name="data check")

    def _check_all(self) -> None:
        worker = get_current_worker()
        for key, paths in dict(self.lists).items():
            started = time.monotonic()
            label = LIST_LABELS.get(key, key)
            self.app.call_from_thread(self._status, f"checking {label}: {', '.join(paths)}…")
            try:
                stats, error = run_stats(paths, lambda: worker.is_cancelled), None
            except (OSError, RuntimeError) as exc:
                stats, error = None, str(exc)
            if worker.is_cancelled:
                return
            self.app.call_from_thread(self._done, key, stats, error, time.monotonic() - started)

    def _status(self, message: str) -> None:
        self.query_one("#data-status", Static).update(message)

    def _done(self, key: str, stats: dict | None, error: str | None, seconds: float) -> None:
        self.results[key] = stats if stats is not None else error or "failed"
        self._status(f"checked {len(self.results)} of {len(self.lists)} list kinds ({seconds:.1f} s for the last)")
        self._show()
        self.post_message(self.Checked(key, stats, error))

    def _show(self) -> None:
        report = Text()
        for key in self.lists:
            label = LIST_LABELS.get(key, key)
            result = self.results.get(key)
            if result is None:
                report.append(f"{label}: …\n", style="dim")
            elif isinstance(result, str):
                report.append(f"{label}: {result}\n", style="bold red")
            else:
                report.append_text(summary_line(label, result))
                report.append("\n")
                for line in histogram_lines(result.get("duration_histogram") or {}, self.size.width or 60):
                    report.append(f"  {line}\n", style="cyan")
        self.query_one("#data-report", Static).update(report)
