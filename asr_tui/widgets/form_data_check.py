"""Check the data lists of the form with ``asr-data stats|check LIST --json`` and show what they hold.

The check runs the data engine's own CLI as a subprocess (reading a large list takes a while; it
may not block the console), one list kind at a time. Typing a list runs ``stats``, which trusts
the list's lengths as training does; the "Check lists" button runs ``check``, which also reads
every audio header (training no longer does at start) and writes its report beside the list.
Either way it shows utterances, hours, durations, the token inventory (as the form's
tokenizer_conf splits text), the valid and test lists' out-of-vocabulary rate against the
training lists, what would be dropped and why (with the first problems' file, line and key), and
the training list's duration histogram.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
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


def run_stats(paths: list[str], should_stop=lambda: False, poll_s: float = 0.1, audio: bool = False, *,
              tokenizer_conf: dict | None = None, vocab_from: list[str] | None = None) -> dict:
    """``asr-data stats PATHS --json`` (``audio``: ``check``, every header read and a report written)
    -> its JSON; raises RuntimeError with its stderr on failure. ``tokenizer_conf``: count tokens as
    it splits text; ``vocab_from``: the training lists the out-of-vocabulary rate is measured against."""
    command = "check" if audio else "stats"
    argv = asr_data_command() + [command, *paths, "--json"]
    if tokenizer_conf:
        argv += ["--tokenizer-conf", json.dumps(tokenizer_conf)]
    if vocab_from:
        argv += ["--vocab-from", *vocab_from]
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
        raise RuntimeError(lines[-1] if lines else f"asr-data {command} exited with {process.returncode}")
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"asr-data {command} printed no JSON ({exc})") from None


def summary_line(label: str, stats: dict) -> Text:
    """``train: 1,234 utts · 2.05 h · 1.2-6.4 s (mean 2.2) · dropped 3 (too_long 3)``."""
    line = Text(f"{label}: {stats.get('utterances', 0):,} utts · {float(stats.get('hours') or 0):.2f} h")
    duration = stats.get("duration_s") or {}
    if duration:
        line.append(f" · {duration['min']:.1f}-{duration['max']:.1f} s (mean {duration['mean']:.1f})")
    dropped = stats.get("dropped") or {}
    total = stats.get("num_dropped", sum(dropped.values()))
    if total:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(dropped.items()))
        line.append(f" · dropped {total:,} ({reasons})", style="bold yellow")
    else:
        line.append(" · nothing dropped", style="green")
    if stats.get("distinct_tokens"):
        line.append(f" · {stats['distinct_tokens']:,} distinct {stats.get('token_unit', 'token')} units")
    vocabulary = stats.get("vocabulary")
    if vocabulary:
        rate = float(vocabulary.get("oov_rate") or 0)
        examples = ", ".join(vocabulary.get("oov_examples") or [])
        line.append(f" · OOV {100 * rate:.1f}% of tokens" + (f" ({examples})" if examples else ""),
                    style="bold yellow" if rate > 0.01 else "green")
    return line


def problem_lines(stats: dict, limit: int = 3) -> list[str]:
    """The first problems (file:line key: reason), then how many more there are."""
    problems = stats.get("problems") or []
    lines = []
    for problem in problems[:limit]:
        where = problem.get("path", "?") + (f":{problem['line']}" if problem.get("line") else "")
        key = f" {problem['key']!r}" if problem.get("key") else ""
        detail = f": {problem['detail']}" if problem.get("detail") else ""
        lines.append(f"{where}{key}: {problem.get('reason', '?')}{detail}")
    hidden = max(int(stats.get("num_dropped", len(problems))) - min(len(problems), limit), 0)
    if hidden:
        lines.append(f"… and {hidden:,} more")
    return lines


def render_histogram(histogram: dict, width: int, height: int) -> str:
    """plotext bar chart of ``{"edges", "counts"}`` (utterances per duration bin), as ANSI text."""
    import plotext as plt

    edges, counts = histogram["edges"], histogram["counts"]
    centers = [(low + high) / 2 for low, high in zip(edges, edges[1:])]
    figure = plt.figure
    figure.clear()
    figure.plot_size(width, height)
    figure.theme("simple")
    figure.draw(figure.bar(centers, counts, width=0.8 * (edges[1] - edges[0])))
    figure.title("train utterances per duration (s)")
    return figure.build().string()


class DurationHistogram(Widget):
    """The training list's duration histogram, drawn at the widget's size."""

    DEFAULT_CSS = "DurationHistogram { height: 10; display: none; }"

    histogram: reactive[dict] = reactive(dict, always_update=True)

    def render(self) -> Text:
        counts = self.histogram.get("counts") or []
        if len(self.histogram.get("edges") or []) != len(counts) + 1 or not counts \
                or self.size.width < 20 or self.size.height < 5:
            return Text("")
        return Text.from_ansi(render_histogram(self.histogram, self.size.width, self.size.height))


class DataCheck(Vertical):
    """Runs and shows the checks of the train/valid/test lists."""

    DEFAULT_CSS = """
    DataCheck { height: auto; margin: 1 0 0 0; }
    DataCheck > Horizontal { height: auto; }
    DataCheck #data-status { width: 1fr; color: $text-muted; padding: 0 0 0 1; }
    DataCheck #data-report { height: auto; }
    """

    class Checked(Message):
        """One list kind was checked: ``stats`` is the JSON of ``asr-data stats|check`` (None on failure)."""

        def __init__(self, list_key: str, stats: dict | None, error: str | None) -> None:
            super().__init__()
            self.list_key = list_key
            self.stats = stats
            self.error = error

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lists: dict[str, list[str]] = {}
        self.tokenizer_conf: dict | None = None
        self.results: dict[str, dict | str] = {}
        self._timer: Timer | None = None
        self._audio = False  # the next check reads every audio header (the button)

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Button("Check lists", id="data-check-button", compact=True)
            yield Static("checks utterances, hours, drops and durations of each list; the button also "
                         "reads every audio file's header", id="data-status")
        yield Static("", id="data-report")
        yield DurationHistogram()

    def request(self, lists: dict[str, list[str]], now: bool = False, audio: bool = False,
                tokenizer_conf: dict | None = None) -> None:
        """Check these lists (``{config key: paths}``) after a pause in typing, or ``now``;
        ``audio``: read every audio header too (``asr-data check``); tokens are counted as
        ``tokenizer_conf`` splits text (unchanged when None)."""
        self.lists = {key: list(paths) for key, paths in lists.items() if paths}
        self._audio = audio
        if tokenizer_conf is not None:
            self.tokenizer_conf = dict(tokenizer_conf)
        if self._timer is not None:
            self._timer.stop()
        if now:  # (a Timer of 0 s divides by zero in Textual 8: the button never worked through one)
            self._timer = None
            self.call_later(self._start)
        else:
            self._timer = self.set_timer(DEBOUNCE_S, self._start)

    @on(Button.Pressed, "#data-check-button")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.request(self.lists, now=True, audio=True)

    def _start(self) -> None:
        self._timer = None
        if not self.lists:
            self.query_one("#data-status", Static).update("no lists to check")
            return
        self.results = {}
        self._show()
        self.run_worker(partial(self._check_all, self._audio), thread=True, exclusive=True, group="data-check",
                        name="data check")

    def _check_all(self, audio: bool = False) -> None:
        worker = get_current_worker()
        lists = dict(self.lists)
        train = lists.get("train_data_set_list")
        for key, paths in lists.items():
            started = time.monotonic()
            label = LIST_LABELS.get(key, key)
            doing = "reading every audio header of" if audio else "checking"
            self.app.call_from_thread(self._status, f"{doing} {label}: {', '.join(paths)}…")
            try:
                stats, error = run_stats(paths, lambda: worker.is_cancelled, audio=audio,
                                         tokenizer_conf=self.tokenizer_conf,
                                         vocab_from=train if key != "train_data_set_list" else None), None
            except (OSError, RuntimeError) as exc:
                stats, error = None, str(exc)
            except Exception as exc:  # noqa: BLE001 - a failed check is shown; it must not close the form
                stats, error = None, f"{type(exc).__name__}: {exc}"
            if worker.is_cancelled:
                return
            self.app.call_from_thread(self._done, key, stats, error, time.monotonic() - started)

    def _status(self, message: str) -> None:
        self.query_one("#data-status", Static).update(message)

    def _done(self, key: str, stats: dict | None, error: str | None, seconds: float) -> None:
        self.results[key] = stats if stats is not None else error or "failed"
        report = f"; report {stats['report']}" if stats and stats.get("report") else ""
        self._status(f"checked {len(self.results)} of {len(self.lists)} list kinds ({seconds:.1f} s for the last){report}")
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
                for line in problem_lines(result):
                    report.append(f"  {line}\n", style="yellow")
        self.query_one("#data-report", Static).update(report)
        train = self.results.get("train_data_set_list")
        histogram = self.query_one(DurationHistogram)
        histogram.histogram = train.get("duration_histogram") or {} if isinstance(train, dict) else {}
        histogram.display = bool(histogram.histogram.get("counts"))
