"""Getting an exception on any rank into the event log, and ending every rank.

Only rank 0 appends to events.jsonl. Another rank that fails writes its ``error`` event to
``events.rank{N}.err.json`` in the run directory (atomically) before it exits non-zero; torchrun
then stops the other workers. Rank 0 watches for these files in a thread, so the error reaches
the log even while rank 0 is blocked in a collective, and merges them into events.jsonl. If
rank 0 cannot end by itself within ``grace_s`` (a collective that never returns), the watcher
writes ``end`` with status failed and exits the process: nothing hangs. A file left behind by a
rank 0 that was killed first is merged by the next launch.

Runs over several machines need the run directory on storage they share for rank N's file to
reach rank 0; rank N's traceback is also in its own console output either way.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from engine.utils.fileio import atomic_write_text

ERROR_FILE_GLOB = "events.rank*.err.json"


def error_fields(rank: int, exc: BaseException) -> dict:
    """The fields of an ``error`` event for ``exc`` raised on ``rank``."""
    return {
        "rank": rank,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "message": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


class ErrorChannel:
    """Rank N -> rank 0 error reports through files in the run directory."""

    def __init__(self, run_dir: str | os.PathLike, rank: int, write_event: Callable[..., None],
                 poll_s: float = 0.5, grace_s: float = 20.0) -> None:
        self.run_dir = Path(run_dir)
        self.rank = rank
        self.write_event = write_event
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.peer_errors: list[dict] = []
        self._merged: set[str] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._on_timeout: Callable[[str], None] | None = None
        self._thread: threading.Thread | None = None

    def report(self, exc: BaseException) -> dict:
        """Record ``exc`` for this rank: straight into the log on rank 0, a file elsewhere."""
        fields = error_fields(self.rank, exc)
        if self.rank == 0:
            self.write_event("error", **fields)
        else:
            payload = {"event": "error", "time": time.time(), **fields}
            atomic_write_text(self.run_dir / f"events.rank{self.rank}.err.json", json.dumps(payload) + "\n")
        return fields

    def merge_pending(self, previous_launch: bool = False) -> list[dict]:
        """Move other ranks' error files into events.jsonl (rank 0); returns the newly merged ones."""
        merged = []
        with self._lock:
            for path in sorted(self.run_dir.glob(ERROR_FILE_GLOB)):
                if path.name in self._merged:
                    continue
                try:
                    payload = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue  # being written (atomically, so only for an instant) or gone
                payload.pop("event", None)
                payload.pop("time", None)
                if previous_launch:
                    payload["previous_launch"] = True
                self.write_event("error", **payload)
                self._merged.add(path.name)
                path.unlink(missing_ok=True)
                merged.append(payload)
                if not previous_launch:
                    self.peer_errors.append(payload)
        return merged

    def wait_for_peer_error(self, timeout_s: float) -> None:
        """After a failed collective, give the rank that caused it time to write its file."""
        deadline = time.monotonic() + timeout_s
        while not self.peer_errors and time.monotonic() < deadline:
            self.merge_pending()
            if not self.peer_errors:
                time.sleep(0.1)

    def watch(self, on_timeout: Callable[[str], None]) -> None:
        """Rank 0: merge peers' errors as they appear; ``on_timeout(reason)`` if rank 0 stays stuck."""
        self._on_timeout = on_timeout
        self._thread = threading.Thread(target=self._watch, name="rank-error-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        first_seen: float | None = None
        while not self._done.wait(self.poll_s):
            if self.merge_pending() and first_seen is None:
                first_seen = time.monotonic()
            if first_seen is not None and time.monotonic() - first_seen > self.grace_s:
                if self._on_timeout is not None and not self._done.is_set():
                    self._on_timeout(self.failure_reason())
                return

    def failure_reason(self) -> str:
        if not self.peer_errors:
            return ""
        first = self.peer_errors[0]
        return f"rank {first['rank']} failed: {first['message']}"

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self.poll_s + 1)
