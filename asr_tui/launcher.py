"""Start, stop and resume training jobs as detached torchrun process groups.

A job runs in a new session (``start_new_session=True``), so closing the console or losing
the SSH connection leaves it running; its output goes to RUN/console.log, never into a pipe
nobody drains. run.json records how to find it again (pid, process group, host) and the
console stops it with SIGTERM to the whole group, which the engine answers by saving and
writing an ``end`` event with status stopped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from engine.config import ConfigError, load_config, save_config, validate_config
from engine.utils.fileio import atomic_write_text

from asr_tui.command import torchrun_argv, torchrun_env
from asr_tui.runs_store import RunJsonError, process_alive, read_run_json
from asr_tui.tailer import read_tail_events

# How long a job that has written its `end` event may take to exit before a relaunch gives up.
EXIT_WAIT_SECONDS = 60.0


class LaunchError(RuntimeError):
    """The job could not be started, stopped or resumed; the message says why and where."""


def write_run_json(run_dir: Path, record: dict) -> None:
    atomic_write_text(Path(run_dir) / "run.json", json.dumps(record, indent=2) + "\n")


class Launcher:
    """Launches jobs and keeps their Popen handles so finished children are reaped.

    ``cwd`` is where the job runs (relative data paths in the config resolve there); it
    defaults to the console's working directory.
    """

    def __init__(self, cwd: Path | None = None, python: str | None = None) -> None:
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.python = python
        self._children: dict[Path, subprocess.Popen] = {}
        # reap() runs on the UI timer and in the launch worker (waiting for a job to exit).
        self._children_lock = threading.Lock()

    def run_dir_of(self, config: dict) -> Path:
        output_dir = Path(str(config.get("output_dir") or ""))
        if not str(output_dir):
            raise LaunchError("output_dir is empty: the run needs a directory")
        return output_dir if output_dir.is_absolute() else self.cwd / output_dir

    def launch(self, config: dict, extra_args: list[str] | None = None) -> Path:
        """Validate ``config``, write RUN/config.yaml and start the job; returns the run directory.

        The config check of ``asr-train --check`` runs first, its optimiser part importing torch:
        the app calls this from its launch worker, never at start. The paths (lists, output_dir)
        are the job's to check, in its own working directory, before it writes anything."""
        try:
            config = validate_config(config, "<setup form>", deep=True)
        except ConfigError as exc:
            raise LaunchError(str(exc)) from None
        run_dir = self.run_dir_of(config)
        self._refuse_if_running(run_dir)
        config_path = run_dir / "config.yaml"
        save_config(config, config_path)
        return self._start(run_dir, config, config_path, list(extra_args or []), resumed_from=None)

    def resume(self, run_dir: Path, checkpoint: Path) -> Path:
        """Relaunch ``run_dir`` from its config.yaml with ``++train_conf.resume_from=checkpoint``.

        ``checkpoint`` is a path, or the bare file name of one of the run's checkpoints.
        """
        run_dir = Path(run_dir).absolute()
        checkpoint = Path(checkpoint)
        if not checkpoint.is_absolute():
            checkpoint = run_dir / checkpoint if checkpoint.parent == Path(".") else checkpoint.absolute()
        if not checkpoint.exists():
            raise LaunchError(f"{checkpoint}: no such checkpoint")
        config_path = run_dir / "config.yaml"
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            raise LaunchError(str(exc)) from None
        self._refuse_if_running(run_dir)
        override = f"++train_conf.resume_from={checkpoint.resolve()}"
        return self._start(run_dir, config, config_path, [override], resumed_from=str(checkpoint))

    def _refuse_if_running(self, run_dir: Path, exit_wait_s: float = EXIT_WAIT_SECONDS) -> None:
        """Refuse while a job lives in ``run_dir``; one that wrote its `end` event gets
        ``exit_wait_s`` to exit (torchrun reaps its workers after the engine has saved)."""
        try:
            record = read_run_json(run_dir)
        except RunJsonError:
            record = None  # unreadable record: it will be replaced by the new launch
        if not record or not process_alive(record):
            from engine.trainer.run_lock import lock_holder  # torch-free

            holder = lock_holder(run_dir)  # a job started from a shell, unknown to run.json
            if holder is not None:
                raise LaunchError(f"{run_dir}: a job is training there ({holder.describe()}); stop it first")
            return
        events, _, _ = read_tail_events(Path(run_dir) / "events.jsonl")
        if any(event.get("event") == "end" for event in events):
            deadline = time.monotonic() + exit_wait_s
            while time.monotonic() < deadline:
                self.reap()
                if not process_alive(record):
                    return
                time.sleep(0.2)
        raise LaunchError(f"{run_dir}: a job is still running there (pid {record.get('pid')}); stop it first")

    def _start(self, run_dir: Path, config: dict, config_path: Path, extra_args: list[str],
               resumed_from: str | None) -> Path:
        argv = torchrun_argv(config, config_path.resolve(), python=self.python) + extra_args
        env = dict(os.environ)
        env.update(torchrun_env(config))
        env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach console.log as they happen
        record = {
            "argv": argv,
            "pid": None,
            "pgid": None,
            "host": socket.gethostname(),
            "start_time": time.time(),
            "status": "starting",
            "launched_by": "asr-tui",
            "cwd": str(self.cwd),
            "config_path": str(config_path.resolve()),
            "resumed_from": resumed_from,
        }
        # Written before the job starts so the engine, reading run.json, sees it was launched here.
        write_run_json(run_dir, record)
        with open(run_dir / "console.log", "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"# asr-tui {stamp}: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                record["status"] = "failed"
                write_run_json(run_dir, record)
                raise LaunchError(f"could not start {argv[0]}: {exc}") from None
        with self._children_lock:
            self._children[run_dir.resolve()] = child
        record.update(pid=child.pid, pgid=child.pid, status="running")
        self._merge_engine_fields(run_dir, record)
        write_run_json(run_dir, record)
        return run_dir

    @staticmethod
    def _merge_engine_fields(run_dir: Path, record: dict) -> None:
        """Keep what the engine may already have added (engine_pid) to our record."""
        try:
            current = read_run_json(run_dir) or {}
        except RunJsonError:
            return
        if current.get("start_time") == record["start_time"]:
            for key, value in current.items():
                record.setdefault(key, value)
                if key == "engine_pid":
                    record[key] = value

    def stop(self, run_dir: Path, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` to the job's process group; returns the group id."""
        try:
            record = read_run_json(run_dir)
        except RunJsonError as exc:
            raise LaunchError(str(exc)) from None
        if not record:
            raise LaunchError(f"{Path(run_dir) / 'run.json'}: no launch record, so no process to stop")
        if process_alive(record) is None:
            raise LaunchError(f"{run_dir}: job runs on {record.get('host')}; stop it there")
        if not process_alive(record):
            raise LaunchError(f"{run_dir}: the job is not running")
        # A torchrun job started from a shell: each worker has its own session, and the
        # engine records the group of torchrun itself, which forwards the signal to them all.
        pgid = record.get("launcher_pgid", record.get("pgid"))
        if not isinstance(pgid, int) or pgid <= 1 or pgid == os.getpgid(0):
            raise LaunchError(f"{Path(run_dir) / 'run.json'}: no usable process group (pgid={pgid!r})")
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            raise LaunchError(f"{run_dir}: the job is already gone") from None
        return pgid

    def reap(self) -> dict[Path, int]:
        """Collect children that exited (no zombies); returns their exit codes by run directory."""
        finished = {}
        with self._children_lock:  # two reapers must not both take (and delete) one child
            for run_dir, child in list(self._children.items()):
                code = child.poll()
                if code is not None:
                    finished[run_dir] = code
                    del self._children[run_dir]
        return finished
