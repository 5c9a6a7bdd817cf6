"""What a checkpoint holds to continue a run exactly, and where a run resumes from.

A checkpoint is the full state: model weights, every OptimScheduler and the AMP scaler
(TrainStep.state_dict), the sampler's mid-epoch position, the position counters, each rank's
RNG states and, in a one-process run, gradients accumulated but not yet applied. Loading all of
it continues the same curve; on the CPU with deterministic settings a resumed run ends with the
same parameters as one that was never interrupted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.checkpoint.names import parse_name
from engine.checkpoint.storage import CheckpointError, load_checkpoint

log = logging.getLogger("engine")

LATEST = "model.pt"


@dataclass
class Position:
    """Where training is. ``epoch`` is 1-based: the epoch in progress, or the last one when ``epoch_done``."""

    epoch: int = 1
    epoch_done: bool = False
    step: int = 0  # optimizer updates so far: the unit of log/validate/save intervals and of events
    batch_step: int = 0  # training batches so far: TrainStep's step_num (updates x accum_grad)
    # early stopping (train_conf.patience): the best validation metric, its step, validations since
    valid_best: float | None = None
    valid_best_step: int = 0
    valid_stale: int = 0

    @property
    def next_epoch(self) -> int:
        return self.epoch + 1 if self.epoch_done else self.epoch


def resume_path(run_dir: str | os.PathLike, train_conf: dict) -> Path | None:
    """``train_conf.resume_from`` if given (it must exist), else run_dir/model.pt when resume is on."""
    explicit = train_conf.get("resume_from")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"train_conf.resume_from: {path}: no such checkpoint file")
        return path
    latest = Path(run_dir) / LATEST
    if train_conf.get("resume", True) and latest.is_file():
        return latest
    return None


def load_resume_state(run_dir: str | os.PathLike, train_conf: dict) -> tuple[Path | None, dict | None]:
    """(checkpoint path, its state) to resume from, or (None, None) for a fresh start.

    When run_dir/model.pt is unreadable (torn by a crash or a full disk), the newest intact
    epoch/step checkpoint beside it is used instead, and the log says so. An explicit
    ``resume_from`` that is unreadable stays an error: the user asked for that file.
    """
    path = resume_path(run_dir, train_conf)
    if path is None:
        return None, None
    try:
        return path, load_checkpoint(path)
    except CheckpointError as error:
        if train_conf.get("resume_from"):
            raise
        first_error = error
    named = [p for p in Path(run_dir).iterdir() if p.is_file() and (parsed := parse_name(p.name)) is not None
             and parsed.kind in ("epoch", "step")]
    for candidate in sorted(named, key=lambda p: (p.stat().st_mtime, p.name), reverse=True):
        try:
            state = load_checkpoint(candidate)
        except CheckpointError as error:
            log.warning("%s", error)
            continue
        log.warning("%s; resuming from %s, the newest intact checkpoint", first_error, candidate.name)
        return candidate, state
    raise CheckpointError(f"{first_error}; no intact model.pt.ep* checkpoint beside it to resume from "
                          f"(set train_conf.resume: false to start afresh)")


def pending_gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Gradients accumulated towards an update that has not happened yet (accum_grad > 1)."""
    return {name: param.grad.detach().clone() for name, param in model.named_parameters()
            if param.grad is not None and bool(param.grad.ne(0).any())}


def restore_gradients(model: torch.nn.Module, grads: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, grad in grads.items():
        if name in params:
            params[name].grad = grad.to(params[name].device)


def training_state(*, model: torch.nn.Module, train_step, sampler, position: Position, rng: list[dict],
                   pending_grads: dict | None, metrics: dict | None, max_update: dict | None = None) -> dict:
    state = {
        "model": model.state_dict(),
        "train_step": train_step.state_dict(),
        "sampler": sampler.state_dict(),
        "position": asdict(position),
        "epoch": position.epoch,
        "step": position.step,
        "rng": rng,
        "metrics": metrics or {},
        "max_update": dict(max_update or {}),  # max_update: auto as resolved: a resume keeps it
    }
    if pending_grads:
        state["pending_grads"] = pending_grads
    return state


def position_of(state: dict, path: str | os.PathLike) -> Position:
    try:
        return Position(**state["position"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a training checkpoint (no position: {exc}); "
                         f"use train_conf.init_param to start from model weights") from None
