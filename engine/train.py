"""``asr-train`` and ``python -m engine.train --config C [++key=value ...]`` (what torchrun runs).

Under torchrun every worker runs this; without it, one process trains. ``asr-train lr-preview
...`` shows an experiment's learning-rate curves without a model (engine.optim_sche.preview);
``asr-train doctor [--json]`` prints the machine facts a bug report needs (engine.doctor).
Exit status: 0 when the run finished or was stopped by a signal (and saved), 1 when it failed,
2 for a bad command line or config.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from engine.config import ConfigError, load_config


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="asr-train",
        description="Train an ASR model from an experiment config (run it under torchrun for several GPUs).",
        epilog="Overrides use FunASR's form: ++train_conf.max_epoch=10 ++optim_conf.lr=0.0002. "
               "'asr-train lr-preview --help' previews learning-rate schedules; "
               "'asr-train doctor' prints versions, GPUs and tools for a bug report.",
    )
    parser.add_argument("--config", required=True, help="experiment YAML (e.g. presets/conformer-demo.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="++key=value", help="config overrides")
    return parser.parse_args(argv)


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
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"asr-train: {exc}", file=sys.stderr)
        return 2
    return train(config, argv)


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
            self.events.write("end", status=status, reason=reason)
            self.record.finish(status, reason)


def train(config: dict, argv: list[str]) -> int:
    """One process's part of a run; returns the exit status."""
    import torch

    from engine.events import EventWriter
    from engine.trainer.build import build_trainer
    from engine.trainer.errors import ErrorChannel
    from engine.trainer.run_record import RunRecord
    from engine.trainer.signals import StopRequest
    from engine.trainer.train_log import setup_logging
    from engine.utils.dist import cleanup, init_distributed

    stop = StopRequest().install()  # before the slow set-up, so an early Ctrl-C is not lost
    dist_info = init_distributed(config["distributed"]["backend"])
    run_dir = Path(config["output_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    log = setup_logging(run_dir, dist_info.rank)
    events = EventWriter(run_dir / "events.jsonl", enabled=dist_info.is_main)
    record = RunRecord(run_dir)
    end = RunEnd(events, record, dist_info.is_main)
    errors = ErrorChannel(run_dir, dist_info.rank, events.write)
    trainer = None
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
        log.info("start: %d parameters, %d ranks on %s, %d updates per epoch, epochs %d..%d%s",
                 start["num_params"], dist_info.world_size, dist_info.device, start["steps_per_epoch"],
                 start["epoch"], start["max_epoch"],
                 f", resumed from {start['resumed_from']}" if start["resumed_from"] else "")
        status = trainer.fit()
        reason = trainer.stop_reason if status == "stopped" else f"trained {start['max_epoch']} epochs"
        end(status, reason)
        log.info("end: %s (%s)", status, reason)
        return 0
    except KeyboardInterrupt as exc:
        end("stopped", str(exc) or "interrupted")
        return 1
    except BaseException as exc:
        if dist_info.is_main and dist_info.distributed:
            errors.wait_for_peer_error(timeout_s=3.0)  # a failed collective usually means another rank died
        fields = errors.report(exc)
        log.error("rank %d failed: %s\n%s", dist_info.rank, fields["message"], fields["traceback"])
        end("failed", errors.failure_reason() or f"rank {dist_info.rank}: {fields['message']}")
        return 1
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
