"""Run the engine's helper commands (asr-average, asr-decode) from the console.

They need torch, which the console never imports, so they run as child processes. Output
goes to a log file, not a pipe (a full pipe would stall the child); the console reads the
log for progress and errors.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path


class ToolError(RuntimeError):
    """A helper command is missing or failed; the message says which and why."""


def tool_argv(name: str, *args: str) -> list[str]:
    """argv of this environment's console script ``name`` (next to the running interpreter)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return [str(candidate), *args]
    found = shutil.which(name)
    if found:
        return [found, *args]
    raise ToolError(f"{name}: command not found next to {sys.executable} or on PATH "
                    "(install the project: pip install -e .)")


class ToolRun:
    """One helper command started with its output in ``log_path``."""

    def __init__(self, argv: list[str], log_path: Path, cwd: Path | None = None) -> None:
        self.argv = argv
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self) -> "ToolRun":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    self.argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                raise ToolError(f"could not start {self.argv[0]}: {exc}") from None
        return self

    def poll(self) -> int | None:
        return self.process.poll() if self.process else None

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def cancel(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the command's process group; SIGKILL if it has not gone after ``grace_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(grace_s)
                break
            except subprocess.TimeoutExpired:
                continue

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def progress_line(self, max_bytes: int = 4096) -> str:
        """What a terminal would show on the last line: tqdm redraws it with carriage returns."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - max_bytes))
                data = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        lines = [segment for line in data.rstrip().splitlines() for segment in [line.rsplit("\r", 1)[-1]]
                 if segment.strip()]
        return lines[-1].strip() if lines else ""

    def tail(self, lines: int = 8) -> list[str]:
        return [line.rsplit("\r", 1)[-1] for line in self.output().rstrip().splitlines()[-lines:]]
