"""One job per run directory: ``run.lock``, an fcntl lock held by rank 0 while it trains.

Two jobs in one output_dir would interleave their events and overwrite each other's
checkpoints, so the second is refused, naming the holder's pid and host (written into the lock
file). The kernel drops the lock when its holder dies, so a lock file left by a killed job is
simply taken over; when the pid it names is dead on this host, that is said in a note.
The console reads the holder with :func:`lock_holder` (no torch, no locking).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "run.lock"


class RunLockedError(RuntimeError):
    """Another live job trains in this run directory."""


@dataclass
class LockHolder:
    pid: int | None
    host: str
    since: float | None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host or 'an unknown host'}"


def _read_holder(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data:
        return None
    pid = data.get("pid")
    return LockHolder(pid if isinstance(pid, int) else None, str(data.get("host") or ""), data.get("since"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(run_dir: str | os.PathLike) -> LockHolder | None:
    """The job holding ``run_dir``'s lock now, or None (no lock file, or nobody holds it)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _read_holder(path) or LockHolder(None, "", None)
            return None  # a filesystem without locks: nothing to say
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """``with RunLock(run_dir):`` holds the run directory for this process, or raises RunLockedError."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None
        self.note = ""  # set when a stale holder's lock was taken over

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise  # no locks on this filesystem: said by the caller, not silently ignored
            holder = _read_holder(self.path)
            who = holder.describe() if holder else "another process"
            raise RunLockedError(f"{self.path.parent}: a job is already training here ({who}, lock {self.path}); "
                                 f"stop it or choose another output_dir") from None
        previous = _read_holder(self.path)
        host = socket.gethostname()
        if previous is not None and previous.pid != os.getpid():
            if previous.host == host and previous.pid is not None and not _pid_alive(previous.pid):
                self.note = f"{self.path}: took over the lock of {previous.describe()}, which is no longer running"
            elif previous.host != host:
                self.note = f"{self.path}: took over a lock last held by {previous.describe()} (not held now)"
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": host, "since": time.time()}).encode() + b"\n", 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # an empty file: nobody holds it
        except OSError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
