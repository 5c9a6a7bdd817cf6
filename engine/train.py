"""``asr-train`` and ``python -m engine.train --config C [++key=value ...]`` (what torchrun runs).

Under torchrun every worker runs this; without it, one process trains. ``asr-train lr-preview
...`` shows an experiment's learning-rate curves without a model (engine.optim_sche.preview);
``asr-train doctor [--json]`` prints the machine facts a bug report needs (engine.doctor).
Exit status: 0 when the run finished or was stopped by a signal (and saved), 1 when it failed
at run time (a full disk, a permission: one line naming the path and the cause), 2 for a bad
command line, config, data list or checkpoint, or a run directory another job holds (one line
naming the file, line or key; nothing written). The whole config is checked before anything is
written; ``--check`` stops there. ``--debug`` (or ASR_TUI_DEBUG=1) shows tracebacks; they
always go to the run's log.txt.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import threading
import traceback
from pathlib import Path

from engine.config import ConfigError, load_config_traced
from engine.trainer.preflight import check_paths


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="asr-train",
        description="Train an ASR model from an experiment config (run it under torchrun for several GPUs).",
        epilog="Overrides use FunASR's form: ++train_conf.max_epoch=10 ++optim_conf.lr=0.0002. "
               "'asr-train lr-preview --help' previews learning-rate schedules; "
               "'asr-train doctor' prints versions, GPUs and tools for a bug report.",
    )
    parser.add_argument("--config", required=True, help="experiment YAML (e.g. presets/conformer-demo.yaml)")
    parser.add_argument("--check", action="store_true",
                        help="check the config, data lists and paths, then exit (writes nothing)")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks (also: ASR_TUI_DEBUG=1)")
    parser.add_argument("overrides", nargs="*", metavar="++key=value", help="config overrides")
    return parser.parse_args(argv)


def debug_enabled(args: argparse.Namespace) -> bool:
    return bool(args.debug) or os.environ.get("ASR_TUI_DEBUG", "") not in ("", "0")


def one_line(exc: BaseException) -> str:
    """The first line of an error for the terminal (the whole of it goes to log.txt)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_user_error(exc: BaseException) -> bool:
    """A bad config, list or checkpoint found while setting up (exit 2), not a failure at run time."""
    from engine.checkpoint.storage import CheckpointError
    from engine.trainer.run_lock import RunLockedError

    if isinstance(exc, OSError):
        return False
    return isinstance(exc, (ValueError, CheckpointError, RunLockedError))  # DataError, AssetMismatchError...


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lr-preview"]:
        from engine.optim_sche.preview import main as preview_main

        return preview_main(argv[1:])
    if argv[:1] == ["doctor"]:
        from engine.doctor import main as doctor_main

        return doctor_main(argv[1:])
    args = parse_args(argv)
    try:
        config, provenance = load_config_traced(args.config, args.overrides, deep=True)
        check_paths(config, provenance)
    except ConfigError as exc:
        print(f"asr-train: {exc}", file=sys.stderr)
        if debug_enabled(args):
            traceback.print_exc()
        return 2
    if args.check:
        print(f"asr-train: {args.config}: config, data lists and output_dir are fine; nothing written")
        return 0
    return train(config, [a for a in argv if a not in ("--check", "--debug")], debug=debug_enabled(args))


class RunEnd:
    """Writes the run's ``end`` event and run.json status exactly once, from whichever thread gets there first."""

    def __init__(self, events, record, is_main: bool) -> None:
        self.events, self.record, self.is_main = events, record, is_main
        self._lock = threading.Lock()
        self.done = False

    def __call__(self, status: str, reason: str) -> None:
        with self._lock:
            if self.done or not self.is_main:
                return
            self.done = True
            try:
                self.events.write("end", status=status, reason=reason)
                self.record.finish(status, reason)
            except (OSError, ValueError) as exc:  # a full disk: the failure is still reported on stderr
                logging.getLogger("engine").warning("could not record the end of the run: %s", one_line(exc))


def _is_fresh(run_dir: Path) -> bool:
    """True when the run directory does not exist or is empty: a failed set-up then removes it."""
    try:
        return not any(run_dir.iterdir())
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _terminal_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


def _quiet_terminal(log: logging.Logger, debug: bool) -> None:
    """Tracebacks go to log.txt; the terminal gets them only with --debug."""
    if debug:
        return
    for handler in log.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.addFilter(_terminal_only)


def train(config: dict, argv: list[str], debug: bool = False) -> int:
    """One process's part of a run; returns the exit status."""
    from engine.trainer.run_lock import RunLock, RunLockedError

    run_dir = Path(config["output_dir"])
    fresh = _is_fresh(run_dir)
    lock = None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if int(os.environ.get("RANK", "0") or 0) == 0:  # rank 0 holds the run directory
            lock = RunLock(run_dir).acquire()
    except RunLockedError as exc:
        print(f"asr-train: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"asr-train: {one_line(exc)}", file=sys.stderr)
        return 1
    if lock is not None and lock.note:
        print(f"asr-train: note: {lock.note}", file=sys.stderr)
    started = False
    try:
        status, started = _train(config, argv, debug)
        return status
    finally:
        if lock is not None:
            lock.release()
        if not started and fresh and lock is not None:
            logging.getLogger("engine").handlers.clear()
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed set-up leaves no half-made run


def _train(config: dict, argv: list[str], debug: bool) -> tuple[int, bool]:
    """(exit status, whether training started)."""
    import torch

    from engine.events import EventWriter
    from engine.trainer.build import build_trainer
    from engine.trainer.errors import ErrorChannel
    from engine.trainer.run_record import RunRecord
    from engine.trainer.signals import StopRequest
    from engine.trainer.train_log import setup_logging
    from engine.utils.dist import cleanup, init_distributed, world_size_mismatch

    stop = StopRequest().install()  # before the slow set-up, so an early Ctrl-C is not lost
    dist_info = init_distributed(config["distributed"]["backend"])
    run_dir = Path(config["output_dir"])
    log = setup_logging(run_dir, dist_info.rank)
    _quiet_terminal(log, debug)
    mismatch = world_size_mismatch(config, dist_info.world_size) if dist_info.is_main else None
    if mismatch:
        log.warning("%s", mismatch)
    events = EventWriter(run_dir / "events.jsonl", enabled=dist_info.is_main)
    record = RunRecord(run_dir)
    end = RunEnd(events, record, dist_info.is_main)
    errors = ErrorChannel(run_dir, dist_info.rank, events.write)
    trainer = None
    started = False
    if dist_info.is_main:
        record.start(argv)
        errors.merge_pending(previous_launch=True)

        def give_up(reason: str) -> None:  # rank 0 stuck in a collective after another rank died
            end("failed", reason)
            os._exit(1)

        errors.watch(on_timeout=give_up)
    try:
        trainer, start = build_trainer(config, dist_info, events=events, stop=stop)
        events.write("start", **start)
        started = True
        log.info("start: %d parameters, %d ranks on %s, %d updates per epoch, epochs %d..%d%s",
                 start["num_params"], dist_info.world_size, dist_info.device, start["steps_per_epoch"],
                 start["epoch"], start["max_epoch"],
                 f", resumed from {start['resumed_from']}" if start["resumed_from"] else "")
        status = trainer.fit()
        reason = trainer.stop_reason if status == "stopped" else trainer.end_reason
        end(status, reason)
        log.info("end: %s (%s)", status, reason)
        return 0, started
    except KeyboardInterrupt as exc:
        end("stopped", str(exc) or "interrupted")
        return 1, started
    except BaseException as exc:
        if dist_info.is_main and dist_info.distributed:
            errors.wait_for_peer_error(timeout_s=3.0)  # a failed collective usually means another rank died
        try:
            fields = errors.report(exc)
        except (OSError, ValueError):  # the event log itself cannot be written (a full disk)
            fields = {"message": f"{type(exc).__name__}: {exc}",
                      "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
        log.error("rank %d failed: %s", dist_info.rank, one_line(exc), extra={"file_only": not debug})
        log.error("%s", fields["traceback"], extra={"file_only": True})
        end("failed", errors.failure_reason() or f"rank {dist_info.rank}: {fields['message']}")
        user_error = not started and is_user_error(exc)
        if not debug:
            where = (f" (traceback in {run_dir / 'log.txt'})" if started and dist_info.is_main
                     else " (--debug shows the traceback)")
            print(f"asr-train: {'error' if user_error else 'failed'}: {one_line(exc)}{'' if user_error else where}",
                  file=sys.stderr)
        return (2 if user_error else 1), started
    finally:
        errors.stop()
        stop.uninstall()
        if trainer is not None:
            trainer.tensorboard.close()
        events.close()
        cleanup()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
