"""Fabricate realistic run directories for the console's tests.

A run directory as the engine leaves it (docs/contracts.md): config.yaml, run.json, and an
events.jsonl written by the engine's own EventWriter with the fields the trainer writes, built
by the trainer's own functions (``train_event_fields`` from per-rank rows, ``data_event`` from a
``DataReport``; start, valid, checkpoint and end with the keys build.py, trainer.py and train.py
write), log.txt and console.log, and checkpoint files named as FunASR names them. The
checkpoint files hold a few bytes: the console never loads them.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.checkpoint.manager import relative_path
from engine.config import DEFAULTS, deep_merge, save_config
from engine.data.report import DataReport
from engine.events import EventWriter
from engine.trainer.build import data_event
from engine.trainer.train_log import ROW_FIELDS, rank_rows, train_event_fields

LOSS_NAMES = ["loss", "loss_att", "loss_ctc"]  # sorted, as IntervalMeter.row gives them


def config_for(run_dir: Path, **train_conf) -> dict:
    config = deep_merge(DEFAULTS, {
        "output_dir": str(run_dir),
        "train_data_set_list": ["data/train.jsonl"],
        "valid_data_set_list": ["data/valid.jsonl"],
        "test_data_set_list": ["data/test.jsonl"],
        "train_conf": {"max_epoch": 4, "log_interval": 10, "avg_nbest_model": 2,
                       "keep_nbest_models": 3, **train_conf},
    })
    return config


def train_event(step: int, epoch: int, world_size: int = 2, lr: float | None = None,
                log_interval: int = 10, steps_per_epoch: int = 100) -> dict:
    """The fields of a ``train`` event, made by the trainer's own code from per-rank interval rows."""
    loss = 3.0 * math.exp(-step / 300) + 0.2
    acc = 0.95 - 0.85 * math.exp(-step / 250)
    flat = []
    for rank in range(world_size):
        row = {"updates": log_interval, "batch_size": 24 + rank, "data_load": 0.004, "forward": 0.12,
               "backward": 0.21, "optim": 0.01, "total": 0.35, "memory_gb": (812.0 + rank) / 1024,
               "peak_memory_gb": (900.0 + rank) / 1024, "acc": acc, "utterances": 240 * log_interval,
               "frames_real": 21_360 * log_interval, "frames_padded": 24_000 * log_interval,
               "loss_avg_epoch": loss, "acc_avg_epoch": acc, "grad_norm": 2.5}
        terms = {"loss": loss + 0.01 * rank, "loss_att": loss * 0.9, "loss_ctc": loss * 1.3}
        # A field the engine adds to its rows later is absent here (NaN), as on a rank without it.
        flat.append([row.get(name, math.nan) for name in ROW_FIELDS] + [terms[name] for name in LOSS_NAMES])
    lr = lr if lr is not None else 1e-3 * min(1.0, step / 100) + 1e-6
    return train_event_fields(rank_rows(flat, LOSS_NAMES), epoch=epoch, step=step,
                              batch=(step - 1) % steps_per_epoch + 1, batches_per_epoch=steps_per_epoch,
                              lrs={"main": lr}, grad_norms={"main": 2.5}, elapsed_s=0.35 * log_interval,
                              frame_shift_ms=10.0)


class RunFactory:
    """Builds one fabricated run directory step by step."""

    def __init__(self, run_dir: Path, world_size: int = 2, steps_per_epoch: int = 100,
                 max_epoch: int = 4) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.world_size = world_size
        self.steps_per_epoch = steps_per_epoch
        self.max_epoch = max_epoch
        self.config = config_for(self.run_dir, max_epoch=max_epoch)
        save_config(self.config, self.run_dir / "config.yaml")
        self.events = EventWriter(self.run_dir / "events.jsonl")
        self.step = 0

    def run_json(self, pid: int | None, status: str = "running", pgid: int | None = None,
                 launched_by: str = "asr-tui", host: str | None = None, **extra) -> dict:
        record = {
            "argv": [sys.executable, "-m", "torch.distributed.run", "-m", "engine.train",
                     "--config", str(self.run_dir / "config.yaml")],
            "pid": pid, "pgid": pgid if pgid is not None else pid,
            "host": host or socket.gethostname(), "start_time": time.time(),
            "status": status, "launched_by": launched_by, "cwd": str(self.run_dir.parent),
            "config_path": str(self.run_dir / "config.yaml"), **extra,
        }
        (self.run_dir / "run.json").write_text(json.dumps(record, indent=2))
        return record

    def start(self, resumed_from: str | None = None) -> None:
        """``start`` with the keys of engine.trainer.build, then one ``data`` event per split."""
        self.events.write("start", world_size=self.world_size, num_params=1_234_567,
                          steps_per_epoch=self.steps_per_epoch, batches_per_epoch=self.steps_per_epoch,
                          max_epoch=self.max_epoch, resumed_from=resumed_from,
                          epoch=self.step // self.steps_per_epoch + 1, step=self.step, device="cpu",
                          config=self.config)
        for split, utts, seconds, dropped in (("train", 3000, 9000.0, {"too_long": 3, "empty_text": 1}),
                                              ("valid", 300, 900.0, {})):
            report = DataReport(name=split, utterances=utts, seconds=seconds, sources=[f"data/{split}.jsonl"])
            for reason, count in dropped.items():
                for line in range(count):
                    report.drop(reason, f"data/{split}.jsonl", line=line + 1, key=f"u{line}")
            self.events.write("data", **data_event(report, split, [f"data/{split}.jsonl"]))
        self.log(f"start: world_size {self.world_size}, resumed from {resumed_from}")

    def log(self, line: str) -> None:
        for name in ("log.txt", "console.log"):
            with open(self.run_dir / name, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    def train(self, steps: int, log_interval: int = 10, valid_every: int = 50,
              checkpoint_every: int = 100) -> None:
        for _ in range(steps // log_interval):
            self.step += log_interval
            epoch = (self.step - 1) // self.steps_per_epoch + 1
            fields = train_event(self.step, epoch, self.world_size, log_interval=log_interval,
                                 steps_per_epoch=self.steps_per_epoch)
            self.events.write("train", **fields)
            self.log(f"rank: 0, epoch: {epoch}/{self.max_epoch}, step: {self.step}, "
                     f"loss_avg_rank: {fields['loss']:.3f}, acc: {fields['acc']:.3f}")
            if self.step % valid_every == 0:
                losses = {name: value * 1.1 for name, value in fields["losses"].items()}
                self.events.write("valid", epoch=epoch, step=self.step, loss=losses["loss"],
                                  acc=fields["acc"] - 0.03, losses=losses, utterances=300)
            if self.step % checkpoint_every == 0:
                self.checkpoint(epoch, fields["acc"] - 0.03, fields["loss"] * 1.1)

    def checkpoint(self, epoch: int, acc: float, loss: float, name: str | None = None) -> Path:
        path = self.run_dir / (name or f"model.pt.ep{epoch}")
        path.write_bytes(b"fabricated checkpoint " + str(self.step).encode() * 100)
        (self.run_dir / "model.pt").write_bytes(b"latest state")
        self.events.write("checkpoint", path=relative_path(path, self.run_dir), epoch=epoch, step=self.step,
                          metric="acc", metrics={"acc": acc, "loss": loss},
                          kept=[relative_path(path, self.run_dir)], deleted=[], kind="epoch")
        return path

    def end(self, status: str = "finished", reason: str = "") -> None:
        self.events.write("end", status=status, reason=reason)
        self.log(f"end: {status} {reason}")

    def error(self, message: str, rank: int = 1) -> None:
        traceback = ("Traceback (most recent call last):\n  File \"engine/trainer/trainer.py\", line 88, in fit\n"
                     f"RuntimeError: {message}")
        self.events.write("error", rank=rank, message=message, traceback=traceback)
        self.log(traceback)

    def close(self) -> None:
        self.events.close()


def dead_pid() -> int:
    """A pid that surely names no live process now: a child that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def finished_run(root: Path, name: str = "finished", steps: int = 400) -> RunFactory:
    run = RunFactory(root / name)
    run.run_json(pid=dead_pid(), status="finished")
    run.start()
    run.train(steps)
    run.end("finished")
    run.close()
    return run


def crashed_run(root: Path, name: str = "crashed") -> RunFactory:
    run = RunFactory(root / name)
    run.run_json(pid=dead_pid())
    run.start()
    run.train(120)
    run.error("CUDA out of memory. Tried to allocate 2.00 GiB")
    run.close()
    return run


def live_run(root: Path, name: str = "live") -> tuple[RunFactory, int]:
    """A run whose run.json names this test process's own pid: alive as long as the test."""
    run = RunFactory(root / name)
    run.run_json(pid=os.getpid(), pgid=os.getpgid(0))
    run.start()
    run.train(60)
    return run, os.getpid()
