"""Checkpoints screen: browse a run's checkpoints, average marked ones, decode, resume.

Averaging and decoding need torch, so they run as the engine's own commands (asr-average,
asr-decode) in child processes watched by thread workers; the screen shows their progress
line and, for a decode, the CER/WER summary and the worst utterances.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static
from textual.worker import get_current_worker

from engine.config import ConfigError, load_config
from engine.decode.modes import supported_modes

from asr_tui.checkpoint_list import CheckpointInfo, human_size, list_checkpoints, nbest
from asr_tui.decode_results import DecodeResult, DecodeResultError, read_decode_result
from asr_tui.messages import ResumeRequested
from asr_tui.runs_store import RunJsonError, read_run_json
from asr_tui.screens.confirm import ConfirmScreen
from asr_tui.screens.decode_dialog import DecodeDialog, DecodeRequest
from asr_tui.tools import ToolError, ToolRun, tool_argv
from asr_tui.widgets.footer import Footer
from asr_tui.widgets.row_table import RowTable

POLL_SECONDS = 0.3


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class CheckpointsScreen(Screen):
    """Table of checkpoints; space marks, a averages the marked, d decodes, r resumes."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("a", "average", "Average marked"),
        Binding("d", "decode", "Decode"),
        Binding("r", "resume", "Resume from here"),
        Binding("x", "export", "Export model dir"),
        Binding("b", "mark_nbest", "Mark n-best"),
        Binding("g", "reload", "Reload"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoints: list[CheckpointInfo] = []
        self.marked: set[str] = set()
        self.config: dict = {}
        self.busy = False
        self.result: DecodeResult | None = None
        self._nbest_done = False
        self._select_after: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="ckpt-info")
        yield RowTable(id="ckpt-table")
        yield Static(id="ckpt-job")
        yield Static(id="decode-summary")
        yield RowTable(id="worst-table")
        yield Static(id="worst-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Checkpoints {self.run_dir.name}"
        table = self.query_one("#ckpt-table", DataTable)
        for label in ("mark", "checkpoint", "epoch", "step", "valid acc", "valid loss", "size", "saved"):
            table.add_column(label, key=label)
        worst = self.query_one("#worst-table", DataTable)
        for label in ("utterance", "errors", "reference", "hypothesis"):
            worst.add_column(label, key=label)
        worst.display = False
        try:
            self.config = load_config(self.run_dir / "config.yaml")
        except ConfigError as exc:
            self.notify(f"{exc} (n-best and test list defaults unavailable)", severity="warning")
        self.action_reload()

    @property
    def train_conf(self) -> dict:
        return self.config.get("train_conf", {})

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="ckpt-load")
    def _load(self) -> None:
        checkpoints, problems = list_checkpoints(self.run_dir)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, checkpoints, problems)

    def _show(self, checkpoints: list[CheckpointInfo], problems: list[str]) -> None:
        if not self.is_attached:  # the screen closed while the listing ran: its widgets are gone
            return
        self.checkpoints = checkpoints
        names = {c.name for c in checkpoints}
        self.marked &= names
        if not self._nbest_done:
            self._nbest_done = True
            self._mark_nbest(notify=False)
        self._fill_table()
        count = int(self.train_conf.get("avg_nbest_model", 0) or 0)
        metric = self.train_conf.get("avg_keep_nbest_models_type", "acc")
        info = Text(f"{self.run_dir}  ·  {len(checkpoints)} checkpoints", style="bold")
        if count:
            info.append(f"  ·  n-best: {count} by valid {metric}", style="")
        for problem in problems:
            info.append(f"\n{problem}", style="yellow")
        if not checkpoints:
            info.append("\nno checkpoint files (model.pt*) in this run yet", style="dim")
        self.query_one("#ckpt-info", Static).update(info)

    def _fill_table(self) -> None:
        table = self.query_one("#ckpt-table", DataTable)
        row = table.cursor_row
        table.clear()
        for ckpt in self.checkpoints:
            mark = Text("●", style="bold green") if ckpt.name in self.marked else Text("○", style="dim")
            table.add_row(
                mark, ckpt.name, "-" if ckpt.epoch is None else str(ckpt.epoch),
                "-" if ckpt.step is None else str(ckpt.step), _metric(ckpt.acc), _metric(ckpt.loss),
                human_size(ckpt.size), time.strftime("%m-%d %H:%M", time.localtime(ckpt.mtime)),
                key=ckpt.name,
            )
        names = [c.name for c in self.checkpoints]
        if self._select_after in names and self.busy is False:
            row = names.index(self._select_after)
            self._select_after = None
        if self.checkpoints:
            table.move_cursor(row=min(row, len(self.checkpoints) - 1), animate=False)

    def selected(self) -> CheckpointInfo | None:
        """The checkpoint under the cursor, by its row key (the table may be filtered or sorted)."""
        table = self.query_one("#ckpt-table", DataTable)
        if not self.checkpoints or table.row_count == 0:
            return None
        try:
            name = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - the cursor is outside the rows while the table is rebuilt
            return None
        return next((c for c in self.checkpoints if c.name == name), None)

    def _mark_nbest(self, notify: bool = True) -> None:
        count = int(self.train_conf.get("avg_nbest_model", 0) or 0)
        metric = self.train_conf.get("avg_keep_nbest_models_type", "acc")
        best = nbest(self.checkpoints, count, "loss" if metric == "loss" else "acc")
        self.marked = {c.name for c in best}
        if notify:
            self.notify(f"marked the {len(best)} best by valid {metric}")

    def action_mark_nbest(self) -> None:
        self._mark_nbest()
        self._fill_table()

    def action_toggle_mark(self) -> None:
        ckpt = self.selected()
        if ckpt is None:
            return
        if not ckpt.averageable:
            self.notify(f"{ckpt.name} is not an epoch or step checkpoint: it cannot be averaged",
                        severity="warning")
            return
        self.marked ^= {ckpt.name}
        table = self.query_one("#ckpt-table", DataTable)
        row = table.cursor_row
        self._fill_table()
        table.move_cursor(row=min(row + 1, len(self.checkpoints) - 1), animate=False)

    # Averaging.

    def action_average(self) -> None:
        if self.busy:
            self.notify("a job is already running", severity="warning")
            return
        chosen = [c for c in self.checkpoints if c.name in self.marked]
        if not chosen:
            self.notify("mark checkpoints with space first (b marks the n-best)", severity="warning")
            return
        out = self.run_dir / f"model.pt.avg{len(chosen)}"
        question = f"Average {len(chosen)} checkpoints into {out.name}?"
        if out.exists():
            question += f"\n{out.name} exists and will be replaced."

        def answered(yes: bool | None) -> None:
            if yes:
                argv = tool_argv("asr-average", "--run", str(self.run_dir), "--out", str(out),
                                 "--checkpoints", *(str(c.path) for c in chosen))
                self._select_after = out.name  # the new average is what one decodes next
                self._run_tool(argv, self.run_dir / "average.log", f"averaging {len(chosen)} → {out.name}",
                               decode_dir=None)

        try:
            tool_argv("asr-average")
        except ToolError as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.push_screen(ConfirmScreen(question, yes="Average"), answered)

    # Exporting a FunASR model directory.

    def _selected_when_idle(self) -> CheckpointInfo | None:
        """The selected checkpoint, or None (told why) while a job runs or nothing is selected."""
        if self.busy:
            self.notify("a job is already running", severity="warning")
            return None
        ckpt = self.selected()
        if ckpt is None:
            self.notify("no checkpoint selected", severity="warning")
        return ckpt

    def action_export(self) -> None:
        ckpt = self._selected_when_idle()
        if ckpt is None:
            return
        out = self.run_dir / "export" / ckpt.name
        question = (f"Export {ckpt.name} as a FunASR model directory into {out}?\n"
                    "(config.yaml, model.pt, am.mvn, tokens.json, configuration.json: funasr.AutoModel loads it)")
        if out.exists():
            question += f"\n{out} exists: its files will be replaced."
        try:
            argv = tool_argv("asr-average", "--run", str(self.run_dir), "--export-only", str(ckpt.path),
                             "--export", str(out))
        except ToolError as exc:
            self.notify(str(exc), severity="error")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._run_tool(argv, self.run_dir / "export.log", f"exporting {ckpt.name} → {out}", decode_dir=None)

        self.app.push_screen(ConfirmScreen(question, yes="Export"), answered)

    # Decoding.

    def _default_test_list(self) -> str:
        for key in ("test_data_set_list", "valid_data_set_list"):
            lists = self.config.get(key) or []
            if lists:
                return str(lists[0])
        return ""

    def action_decode(self) -> None:
        ckpt = self._selected_when_idle()
        if ckpt is None:
            return
        record_cwd = self._run_cwd()

        def answered(request: DecodeRequest | None) -> None:
            if request is None:
                return
            try:
                style = "" if request.text_style == "auto" else f"-{request.text_style}"
                out = self.run_dir / "decode" / f"{request.checkpoint.name}-{request.mode}-{request.test_list.stem}{style}"
                argv = tool_argv("asr-decode", "--model", str(request.checkpoint), "--input",
                                 str(request.test_list), "--mode", request.mode, "--beam",
                                 str(request.beam), "--text-style", request.text_style, "--output", str(out))
            except ToolError as exc:
                self.notify(str(exc), severity="error")
                return
            self._run_tool(argv, out / "decode.log", f"decoding {request.test_list.name} with "
                           f"{request.checkpoint.name} ({request.mode})", decode_dir=out)

        modes = supported_modes(self.config.get("model", "conformer"), self.config)
        self.app.push_screen(DecodeDialog(ckpt.path, self._default_test_list(), cwd=record_cwd, modes=modes), answered)

    def _run_cwd(self) -> Path:
        """Where the run was launched: relative list paths in its config resolve there."""
        try:
            record = read_run_json(self.run_dir) or {}
        except RunJsonError:
            record = {}
        cwd = record.get("cwd")
        return Path(cwd) if isinstance(cwd, str) and Path(cwd).is_dir() else Path.cwd()

    def _run_tool(self, argv: list[str], log_path: Path, what: str, decode_dir: Path | None) -> None:
        self.busy = True
        self.query_one("#ckpt-job", Static).update(Text(f"{what} …", style="bold"))
        self._watch_tool(argv, log_path, what, decode_dir)

    @work(thread=True, group="ckpt-tool")
    def _watch_tool(self, argv: list[str], log_path: Path, what: str, decode_dir: Path | None) -> None:
        worker = get_current_worker()
        run = ToolRun(argv, log_path, cwd=self._run_cwd())
        try:
            run.start()
        except ToolError as exc:
            self.app.call_from_thread(self._tool_done, what, None, [str(exc)], None)
            return
        started = time.monotonic()
        while run.poll() is None:
            if worker.is_cancelled:
                run.cancel()
                return
            line = run.progress_line()
            elapsed = time.monotonic() - started
            self.app.call_from_thread(self._tool_progress, f"{what} · {elapsed:.0f}s · {line}")
            time.sleep(POLL_SECONDS)
        code = run.poll()
        result = None
        problems = [] if code == 0 else run.tail(8)
        if code == 0 and decode_dir is not None:
            try:
                result = read_decode_result(decode_dir)
            except DecodeResultError as exc:
                problems = [str(exc)]
        self.app.call_from_thread(self._tool_done, what, code, problems, result)

    def _tool_progress(self, line: str) -> None:
        if not self.is_attached:
            return
        self.query_one("#ckpt-job", Static).update(Text(line[-400:]))

    def _tool_done(self, what: str, code: int | None, problems: list[str], result: DecodeResult | None) -> None:
        self.busy = False
        if not self.is_attached:  # closed meanwhile: the tool's files are written, its log says how it went
            return
        job = self.query_one("#ckpt-job", Static)
        if code == 0 and not problems:
            job.update(Text(f"{what}: done", style="green"))
            self.notify(f"{what}: done")
        else:
            text = Text(f"{what}: failed" + (f" (exit {code})" if code is not None else "") + "\n",
                        style="bold red")
            text.append("\n".join(problems), style="red")
            job.update(text)
            self.notify(f"{what}: failed", severity="error")
        if result is not None:
            self.show_result(result)
        self.action_reload()

    def show_result(self, result: DecodeResult) -> None:
        self.result = result
        summary = result.summary
        text = Text("decode ", style="bold")
        text.append(str(result.out_dir.name))
        parts = []
        for key in ("cer", "wer"):
            if isinstance(summary.get(key), (int, float)):
                parts.append(f"{key.upper()} {summary[key] * 100:.2f}%")
        for key, label in (("substitutions", "S"), ("deletions", "D"), ("insertions", "I")):
            if isinstance(summary.get(key), int):
                parts.append(f"{label} {summary[key]}")
        if isinstance(summary.get("rtf"), (int, float)):
            parts.append(f"RTF {summary['rtf']:.3f}")
        if summary.get("utterances") is not None:
            parts.append(f"{summary['utterances']} utts")
        text.append("\n" + "  ".join(parts), style="bold cyan")
        if result.skipped_lines:
            text.append(f"\n{result.skipped_lines} unreadable per-utterance lines skipped", style="yellow")
        self.query_one("#decode-summary", Static).update(text)
        worst = self.query_one("#worst-table", DataTable)
        worst.clear()
        for index, score in enumerate(result.worst):
            worst.add_row(score.key, f"{score.errors}/{score.units}", score.ref, score.hyp, key=str(index))
        worst.display = bool(result.worst)
        self._show_utterance(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "worst-table":
            # by row key (the index in result.worst): the table may be filtered or sorted
            key = event.row_key.value if event.row_key is not None else None
            self._show_utterance(int(key) if key is not None and key.isdigit() else -1)

    def _show_utterance(self, index: int) -> None:
        """Reference and hypothesis in full: the table cuts them at 80 columns."""
        detail = self.query_one("#worst-detail", Static)
        if self.result is None or not 0 <= index < len(self.result.worst):
            detail.update("")
            return
        score = self.result.worst[index]
        text = Text(f"{score.key}  ", style="bold")
        text.append(f"{score.errors} errors / {score.units} characters\n")
        text.append("ref ", style="bold green")
        text.append(score.ref + "\n")
        text.append("hyp ", style="bold yellow")
        text.append(score.hyp)
        detail.update(text)

    # Resume.

    def action_resume(self) -> None:
        ckpt = self.selected()
        if ckpt is None:
            self.notify("no checkpoint selected", severity="warning")
            return
        if ckpt.kind == "average":
            self.notify(f"{ckpt.name} holds averaged weights only, no training state: pick another",
                        severity="warning")
            return
        self.post_message(ResumeRequested(self.run_dir, ckpt.path))
