"""``run.json``: the launch record the console reads to find, watch and stop a job.

When the console launched the job it has already written run.json (``launched_by: asr-tui``,
the torchrun pid and process group); the engine keeps those fields and adds its own pid. A
job started from a shell gets a fresh record. Every write is atomic.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from engine.utils.fileio import atomic_write_text

TERMINAL_STATUSES = ("finished", "stopped", "failed")


class RunRecord:
    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / "run.json"
        self.fields: dict = {}

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def start(self, argv: list[str]) -> dict:
        """Write the record for this launch (rank 0 only) and return it."""
        existing = self._read()
        console_launch = existing.get("launched_by") == "asr-tui" and existing.get("status") not in TERMINAL_STATUSES
        if console_launch:
            fields = dict(existing)
            fields["engine_pid"] = os.getpid()
        else:
            fields = {
                "argv": [sys.executable, "-m", "engine.train", *argv],
                "cwd": os.getcwd(),
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "host": socket.gethostname(),
                "start_time": time.time(),
                "launched_by": "cli",
            }
            if "TORCHELASTIC_RUN_ID" in os.environ:
                # torchrun gives each worker its own session: stopping the job means its launcher's group.
                fields["launcher_pid"] = os.getppid()
                fields["launcher_pgid"] = os.getpgid(os.getppid())
        fields["status"] = "running"
        fields.pop("end_time", None)
        fields.pop("reason", None)
        self.fields = fields
        atomic_write_text(self.path, json.dumps(fields, indent=2) + "\n")
        return fields

    def finish(self, status: str, reason: str = "") -> None:
        fields = dict(self.fields or self._read())
        fields.update(status=status, reason=reason, end_time=time.time())
        self.fields = fields
        atomic_write_text(self.path, json.dumps(fields, indent=2) + "\n")
