"""Averaging model weights of several checkpoints into one (FunASR's model.pt.avg{N}).

Differences from FunASR's average_checkpoints, on purpose: a missing or unreadable source is
an error naming it (FunASR skips it silently and still names the file avg{N}); float tensors
are summed in float64 and cast back (no float16/bfloat16 round-off growing with N); integer
buffers such as BatchNorm's num_batches_tracked are taken from the newest source instead of
summed; and only the running sum and one source are held at a time (sources are memory-mapped,
so a full training state's optimiser tensors are never read), whatever N is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from engine.checkpoint.storage import CheckpointError, load_checkpoint
from engine.utils.fileio import atomic_torch_save


def model_state(checkpoint: dict, path: str | os.PathLike) -> dict[str, Any]:
    """The model state dict in a checkpoint: a full training state's or an average's ``model``,
    FunASR's ``state_dict`` (so FunASR's own runs can be averaged), or the checkpoint itself
    when it is a bare state dict."""
    weights = checkpoint.get("model", checkpoint.get("state_dict", checkpoint))
    if not isinstance(weights, dict) or not any(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"checkpoint {path} holds no model state dict "
                              f"(no 'model' or 'state_dict' key with tensors)")
    return weights


def _averageable(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() or tensor.is_complex()


def average_checkpoints(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike,
                        sources_meta: Sequence[dict] | None = None, metric: str | None = None,
                        progress: bool = False) -> Path:
    """Average the model weights of ``paths`` (oldest first) into ``out_path``, written atomically.

    Floating tensors are averaged in float64 and cast back to their dtype; integer and bool
    tensors (num_batches_tracked) and non-tensor entries come from the last, newest source.
    Every source must hold the same keys and shapes; a difference is an error naming the file
    and key. The output is ``{"model": state_dict, "sources": [...], "metric": metric}``, each
    source being ``{"path": str, **sources_meta[i]}``. ``progress`` shows a bar on stderr.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("average_checkpoints: no checkpoints to average")
    if sources_meta is not None and len(sources_meta) != len(paths):
        raise ValueError(f"average_checkpoints: {len(sources_meta)} sources_meta for {len(paths)} paths")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CheckpointError(f"cannot average: missing checkpoint(s): {', '.join(missing)}")

    sums: dict[str, torch.Tensor] = {}
    newest: dict[str, Any] = {}
    reference: Path | None = None
    for path in tqdm(paths, desc="averaging", unit="ckpt", disable=not progress):
        loaded = load_checkpoint(path, mmap=True)
        assets = loaded.get("assets")  # the newest source's token list / CMVN fingerprints
        weights = model_state(loaded, path)
        del loaded
        if reference is None:
            reference = path
            sums = _float64_copies(weights)
        else:
            _check_same_layout(weights, sums, newest, path, reference)
            for key, total in sums.items():
                total.add_(weights[key])
        # Kept as references only: they are replaced by the next source's, so one model's
        # worth of non-averaged entries is alive at a time, besides the running sum.
        newest = {key: value for key, value in weights.items() if key not in sums}
        newest_dtypes = {key: weights[key].dtype for key in sums}
        key_order = list(weights)
        del weights

    count = len(paths)
    averaged: dict[str, Any] = {}
    for key in key_order:  # the newest source's order, so two files diff cleanly
        if key in sums:
            averaged[key] = sums.pop(key).div_(count).to(newest_dtypes[key])
        else:
            averaged[key] = newest[key].clone() if isinstance(newest[key], torch.Tensor) else newest[key]
    sources = [{"path": str(p), **(dict(sources_meta[i]) if sources_meta else {})}
               for i, p in enumerate(paths)]
    out_path = Path(out_path)
    extra = {"assets": assets} if isinstance(assets, dict) else {}
    atomic_torch_save({"model": averaged, "sources": sources, "metric": metric, **extra}, out_path)
    return out_path


def _float64_copies(weights: dict) -> dict[str, torch.Tensor]:
    """The first source's floating tensors, widened: the running sum starts from them."""
    return {key: value.to(torch.complex128 if value.is_complex() else torch.float64, copy=True)
            for key, value in weights.items()
            if isinstance(value, torch.Tensor) and _averageable(value)}


def _check_same_layout(weights: dict, sums: dict, newest: dict, path: Path, reference: Path) -> None:
    expected = set(sums) | set(newest)
    if set(weights) != expected:
        extra = sorted(set(weights) - expected)[:3]
        lacking = sorted(expected - set(weights))[:3]
        raise CheckpointError(f"cannot average {path} with {reference}: different keys "
                              f"(only in {path.name}: {extra}; missing there: {lacking})")
    for key, total in sums.items():
        value = weights[key]
        if not isinstance(value, torch.Tensor) or not _averageable(value) or value.shape != total.shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"cannot average {path} with {reference}: key {key!r} is {got}, "
                                  f"expected a floating tensor of shape {tuple(total.shape)}")

