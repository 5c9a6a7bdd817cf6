"""What the loop reports every ``log_interval`` updates: the meter, FunASR's log line, TensorBoard.

Each rank measures its own steps; at a log step every rank's row is gathered to rank 0, which
writes one ``train`` event (with a ``ranks`` table) and one FunASR-format log.txt line per rank.
"""

from __future__ import annotations

import logging
import math
import resource
import sys
from pathlib import Path

import torch

from engine.trainer.resources import HEALTH_FIELDS, ResourceProbe, figures_from_values

TIMES = ("data_load", "forward", "backward", "optim", "total")
# Fixed part of a rank's row; the loss terms follow in sorted order.
ROW_FIELDS = ("updates", "batch_size", *TIMES, "memory_gb", "peak_memory_gb", "acc",
              "utterances", "frames_real", "frames_padded", "loss_avg_epoch", "acc_avg_epoch", "grad_norm",
              *HEALTH_FIELDS)

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def setup_logging(run_dir: str | Path, rank: int) -> logging.Logger:
    """log.txt (rank 0) and stderr, in FunASR's (Hydra's) line format; other ranks log warnings only."""
    logger = logging.getLogger("engine")
    logger.handlers.clear()
    logger.propagate = False
    formatter = logging.Formatter(LOG_FORMAT)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    logger.addHandler(stream)
    if rank == 0:
        file_handler = logging.FileHandler(Path(run_dir) / "log.txt", encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    return logger


def memory_gb(device: torch.device) -> tuple[float, float]:
    """(in use, peak) in GiB: CUDA allocator figures on a GPU, the process's resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**30, torch.cuda.max_memory_allocated(device) / 2**30
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
        current = resident_pages * resource.getpagesize() / 2**30
    except (OSError, ValueError, IndexError):
        current = peak
    return current, peak


class IntervalMeter:
    """Sums one rank's per-update measurements since the last log step, plus epoch running means."""

    def __init__(self) -> None:
        self.epoch_loss = 0.0
        self.epoch_acc = 0.0
        self.epoch_updates = 0
        self.reset()

    def reset(self) -> None:
        self.updates = 0
        self.losses: dict[str, float] = {}
        self.acc = 0.0
        self.batch_size = 0
        self.times = dict.fromkeys(TIMES, 0.0)
        self.utterances = 0
        self.frames_real = 0
        self.frames_padded = 0
        self.grad_norm = 0.0

    def new_epoch(self) -> None:
        self.epoch_loss = self.epoch_acc = 0.0
        self.epoch_updates = 0

    def add(self, losses: dict[str, float], grad_norm: float, batch: dict, times: dict[str, float]) -> None:
        self.updates += 1
        acc = losses.get("acc", float("nan"))
        for name, value in losses.items():
            if name != "acc":
                self.losses[name] = self.losses.get(name, 0.0) + value
        self.acc += acc
        size = len(batch["keys"])
        self.batch_size += size
        self.utterances += size
        self.frames_real += int(batch["num_frames_real"])
        self.frames_padded += int(batch["num_frames_padded"])
        self.grad_norm += grad_norm
        for name in TIMES:
            self.times[name] += times.get(name, 0.0)
        self.epoch_loss += losses.get("loss", float("nan"))
        self.epoch_acc += acc
        self.epoch_updates += 1

    def row(self, device: torch.device, probe: ResourceProbe | None = None) -> tuple[list[float], list[str]]:
        """This rank's means over the interval as a flat row (for all_gather) and the loss-term names.

        ``probe`` adds the rank's resources (NaN where a figure does not exist here)."""
        n = max(1, self.updates)
        used, peak = memory_gb(device)
        names = sorted(self.losses)
        row = [self.updates, self.batch_size / n, *(self.times[t] / n for t in TIMES), used, peak, self.acc / n,
               self.utterances, self.frames_real, self.frames_padded,
               self.epoch_loss / max(1, self.epoch_updates), self.epoch_acc / max(1, self.epoch_updates),
               self.grad_norm / n]
        row += probe.row_values() if probe is not None else [math.nan] * len(HEALTH_FIELDS)
        row += [self.losses[name] / n for name in names]
        return row, names


def rank_rows(rows: list[list[float]], loss_names: list[str]) -> list[dict]:
    """Gathered flat rows back into one dict per rank."""
    result = []
    for rank, row in enumerate(rows):
        item = dict(zip(ROW_FIELDS, row))
        for name in HEALTH_FIELDS:  # absent on this rank: not written (docs/contracts.md)
            del item[name]
        item.update(figures_from_values(row[len(ROW_FIELDS) - len(HEALTH_FIELDS):len(ROW_FIELDS)]))
        item["rank"] = rank
        item["losses"] = dict(zip(loss_names, row[len(ROW_FIELDS):]))
        item["loss"] = item["losses"].get("loss", float("nan"))
        for key in ("updates", "utterances", "frames_real", "frames_padded"):
            item[key] = int(item[key])
        result.append(item)
    return result


def train_event_fields(rows: list[dict], *, epoch: int, step: int, batch: int, batches_per_epoch: int,
                       lrs: dict[str, float], grad_norms: dict[str, float], elapsed_s: float,
                       frame_shift_ms: float, skipped: dict[str, int] | None = None) -> dict:
    """The ``train`` event: means over ranks, totals for throughput, and the per-rank table."""
    world = len(rows)
    loss_names = rows[0]["losses"].keys()
    losses = {name: sum(r["losses"][name] for r in rows) / world for name in loss_names}
    utterances = sum(r["utterances"] for r in rows)
    real = sum(r["frames_real"] for r in rows)
    padded = sum(r["frames_padded"] for r in rows)
    elapsed_s = max(elapsed_s, 1e-9)
    return {
        "epoch": epoch,
        "step": step,
        "batch": batch,
        "batches_per_epoch": batches_per_epoch,
        "lr": dict(lrs),
        "loss": losses.get("loss", float("nan")),
        "losses": losses,
        "acc": sum(r["acc"] for r in rows) / world,
        "grad_norm": dict(grad_norms),
        "throughput": utterances / elapsed_s,
        "audio_seconds_per_second": real * frame_shift_ms / 1000.0 / elapsed_s,
        "padding_ratio": 1.0 - real / padded if padded else 0.0,
        "skipped": dict(skipped or {}),
        "ranks": [
            {"rank": r["rank"], "loss": r["loss"], "batch_size": r["batch_size"],
             **{f"{t}_s": r[t] for t in TIMES}, "memory_mb": r["memory_gb"] * 1024,
             "peak_memory_mb": r["peak_memory_gb"] * 1024,
             **{name: r[name] for name in HEALTH_FIELDS if name in r}}
            for r in rows
        ],
    }


def funasr_line(row: dict, *, loss_avg_rank: float, epoch: int, max_epoch: int, batch: int,
                batches_per_epoch: int, step: int, lr: float, device_type: str) -> str:
    """One rank's train line in FunASR's log.txt format (so FunASR log parsers keep working)."""
    loss_epoch = row["loss_avg_epoch"]
    ppl = math.exp(min(loss_epoch, 50.0)) if math.isfinite(loss_epoch) else float("nan")
    stats = [(name, round(value, 3)) for name, value in row["losses"].items()]
    stats += [("acc", round(row["acc"], 3)), ("batch_size", int(round(row["batch_size"])))]
    speed = {"data_load": f"{row['data_load']:.3f}", "forward_time": f"{row['forward']:.3f}",
             "backward_time": f"{row['backward']:.3f}", "optim_time": f"{row['optim']:.3f}",
             "total_time": f"{row['total']:.3f}"}
    device = "GPU" if device_type == "cuda" else "CPU"
    return (f"train, rank: {row['rank']}, epoch: {epoch}/{max_epoch}, step: {batch}/{batches_per_epoch}, "
            f"total step: {step}, (loss_avg_rank: {loss_avg_rank:.3f}), (loss_avg_epoch: {loss_epoch:.3f}), "
            f"(ppl_avg_epoch: {ppl:.3f}), (acc_avg_epoch: {row['acc_avg_epoch']:.3f}), (lr: {lr:.3e}), "
            f"{stats}, {speed}, {device}, memory: usage: {row['memory_gb']:.3f} GB, "
            f"peak: {row['peak_memory_gb']:.3f} GB")


class TensorBoardScalars:
    """Scalars under run_dir/tensorboard when the tensorboard package is installed; a no-op otherwise."""

    def __init__(self, run_dir: str | Path, enabled: bool) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def add(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
