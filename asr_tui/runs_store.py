"""Find run directories under a root and tell what state each is in.

A run directory is one holding ``run.json`` or ``events.jsonl`` (DESIGN.md). Its status comes
from the event log's last launch: an ``end`` event gives finished / stopped / failed; without
one, the job is running if its process group (or pid) is alive on this host and crashed if it
is gone. A run launched on another host cannot be checked: it counts as running while its log
keeps moving and as crashed once it has been silent for ``STALE_SECONDS``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from asr_tui.health import Finding
from asr_tui.run_state import CRASHED, RUNNING, RunState
from engine.events import EventReader

from asr_tui.tailer import read_first_start, read_tail_events

STALE_SECONDS = 600
# How much of console.log's end is searched for the error of a job that died without an `error` event.
LOG_TAIL_BYTES = 16384
# A Python exception line, as a traceback ends: "ImportError: ...", "torch.OutOfMemoryError: ...".
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?$")
SKIP_DIRS = {"decode", "tensorboard", "__pycache__", ".git"}


class RunJsonError(ValueError):
    """run.json exists but cannot be read; the message names the file."""


def read_run_json(run_dir: Path) -> dict | None:
    """The launch record, or None when there is none; RunJsonError when it is unreadable."""
    path = Path(run_dir) / "run.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunJsonError(f"{path}: {exc.strerror}") from exc
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise RunJsonError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise RunJsonError(f"{path}: expected a JSON object, found {type(record).__name__}")
    return record


def _process_start_time(pid: int) -> float | None:
    """Unix start time of ``pid`` from /proc (Linux), to tell a reused pid from ours."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] == b"Z":
            return -1.0  # zombie: exited, waiting to be reaped
        ticks = int(fields[19])
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _pid_alive(pid: int, started_after: float | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_start_time(pid)
    if started == -1.0:
        return False
    if started is not None and started_after is not None and started > started_after + 5:
        return False  # the pid was reused by a process born after our launch
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_alive(record: dict | None) -> bool | None:
    """Whether the job of a run.json record lives: True, False, or None (other host / no record)."""
    if not record:
        return None
    host = record.get("host")
    if host and host != socket.gethostname():
        return None
    start_time = record.get("start_time") if isinstance(record.get("start_time"), (int, float)) else None
    pids = [record.get(k) for k in ("pid", "engine_pid", "launcher_pid")]
    pids = [p for p in pids if isinstance(p, int) and p > 0]
    if any(_pid_alive(pid, start_time) for pid in pids):
        return True
    pgid = record.get("pgid")
    if isinstance(pgid, int) and pgid > 1 and pgid != os.getpgid(0) and _group_alive(pgid):
        # Workers may outlive their leader; a leader born after our launch means the group
        # id was reused, a zombie leader means the job has ended and awaits reaping.
        leader_started = _process_start_time(pgid)
        reused = (leader_started is not None and start_time is not None
                  and leader_started > start_time + 5)
        if not reused and leader_started != -1.0:
            return True
    if not pids and not isinstance(pgid, int):
        return None
    return False


@dataclass
class RunSummary:
    """One line of the runs list."""

    run_dir: Path
    status: str
    reason: str = ""
    step: int | None = None
    total_steps: int | None = None
    epoch: int | None = None
    max_epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    start_time: float | None = None
    last_event_time: float | None = None
    host: str = ""
    launched_by: str = ""
    health: list[Finding] = field(default_factory=list)
    lock_holder: str = ""  # "pid N on HOST" while a job holds the run directory's run.lock

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def progress(self) -> float | None:
        if self.total_steps and self.step is not None:
            return min(1.0, self.step / self.total_steps)
        return None


def console_log_error(run_dir: Path) -> str:
    """The last exception line in the end of RUN/console.log, or "": what killed a job that died
    before the engine could write an `error` event (an import error, a bad interpreter)."""
    path = Path(run_dir) / "console.log"
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    for line in reversed(tail.splitlines()):
        line = line.strip()
        if EXCEPTION_LINE.match(line):
            return line
    return ""


def run_status(state: RunState, record: dict | None, alive: bool | None,
               now: float | None = None, run_dir: Path | None = None) -> tuple[str, str]:
    """(status, reason) of a run from its folded events, launch record and liveness.

    With ``run_dir``, a run that crashed without an `error` event takes its reason from the
    exception line at the end of console.log."""
    if state.end is not None:
        status = str(state.end.get("status") or "finished")
        return status, str(state.end.get("reason") or "")
    if alive:
        return RUNNING, ""
    last_error = state.errors[-1] if state.errors else None
    error_text = ""
    if last_error:
        error_text = f"rank {last_error.get('rank', '?')}: {last_error.get('message', '')}".strip()
    if alive is None:
        now = time.time() if now is None else now
        last = state.last_event_time or (record or {}).get("start_time")
        if isinstance(last, (int, float)) and now - last < STALE_SECONDS and not last_error:
            host = (record or {}).get("host", "")
            return RUNNING, f"on {host}" if host else ""
        return CRASHED, error_text or "no end event and no news from the job"
    if not error_text and run_dir is not None:
        logged = console_log_error(run_dir)
        if logged:
            error_text = f"{logged} (console.log)"
    return CRASHED, error_text or "process gone without an end event"


class _TrackedRun:
    """The folded state of one run's log, advanced by reading only what was appended."""

    # Past this much unread log, jump to the tail instead of folding every event.
    CATCH_UP_BYTES = 1024 * 1024

    def __init__(self, run_dir: Path) -> None:
        self.events_path = Path(run_dir) / "events.jsonl"
        self.state = RunState(keep_series=False)
        self.reader: EventReader | None = None

    def _restart(self) -> None:
        self.state = RunState(keep_series=False)
        events, complete, offset = read_tail_events(self.events_path)
        if not complete or not any(e.get("event") == "start" for e in events):
            first = read_first_start(self.events_path)
            if first is not None:
                self.state.apply(first)
        for event in events:
            self.state.apply(event)
        self.reader = EventReader(self.events_path)
        self.reader.offset = offset

    def update(self) -> RunState:
        try:
            size = self.events_path.stat().st_size
        except FileNotFoundError:
            self.state, self.reader = RunState(keep_series=False), None
            return self.state
        if self.reader is None or size < self.reader.offset \
                or size - self.reader.offset > self.CATCH_UP_BYTES:
            self._restart()
        for event in self.reader.read_new():
            self.state.apply(event)
        return self.state


def summarize(run_dir: Path, state: RunState) -> RunSummary:
    """Status, progress and last metrics of a run from its folded log and its run.json."""
    run_dir = Path(run_dir)
    try:
        record = read_run_json(run_dir)
        record_error = ""
    except RunJsonError as exc:
        record, record_error = None, str(exc)
    alive = process_alive(record)
    status, reason = run_status(state, record, alive, run_dir=run_dir)
    if record_error:
        reason = f"{record_error}; {reason}" if reason else record_error
    record = record or {}
    start_time = record.get("start_time")
    if not isinstance(start_time, (int, float)):
        start_time = (state.first_start or {}).get("time")
    return RunSummary(
        run_dir=run_dir, status=status, reason=reason, step=state.step,
        total_steps=state.total_steps, epoch=state.epoch, max_epoch=state.max_epoch,
        metrics=state.metrics(), start_time=start_time, last_event_time=state.last_event_time,
        host=str(record.get("host", "")), launched_by=str(record.get("launched_by", "")),
        health=state.health.findings(now=time.time(), alive=alive),
        lock_holder=_lock_holder_text(run_dir),
    )


def _lock_holder_text(run_dir: Path) -> str:
    from engine.trainer.run_lock import lock_holder  # torch-free

    holder = lock_holder(run_dir)
    return holder.describe() if holder is not None else ""


def find_run_dirs(root: Path, max_depth: int = 3) -> list[Path]:
    """Run directories under ``root`` (the root itself included), up to ``max_depth`` levels."""
    root = Path(root)
    found: list[Path] = []

    def visit(directory: Path, depth: int) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        names = {entry.name for entry in entries}
        if "run.json" in names or "events.jsonl" in names:
            found.append(directory)
            return
        if depth >= max_depth:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and entry.name not in SKIP_DIRS \
                    and not entry.name.startswith("."):
                visit(Path(entry.path), depth + 1)

    if root.is_dir():
        visit(root, 0)
    return sorted(found)


class RunsStore:
    """The runs under one root; each run's log is read incrementally between scans."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tracked: dict[Path, _TrackedRun] = {}

    def scan(self) -> list[RunSummary]:
        """Every run under the root, newest first; liveness is checked afresh every time."""
        summaries = []
        run_dirs = find_run_dirs(self.root)
        for run_dir in run_dirs:
            tracked = self._tracked.get(run_dir)
            if tracked is None:
                tracked = self._tracked[run_dir] = _TrackedRun(run_dir)
            summaries.append(summarize(run_dir, tracked.update()))
        for gone in set(self._tracked) - set(run_dirs):
            del self._tracked[gone]
        summaries.sort(key=lambda s: (s.start_time or 0.0, s.name), reverse=True)
        return summaries
