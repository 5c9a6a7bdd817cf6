"""Saving and loading one checkpoint file: atomic on write, a clear error naming it on read."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.utils.fileio import atomic_torch_save


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing, unreadable or not what it should be (the message names it)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    pass


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` so a reader or a crash never meets a half-written file."""
    atomic_torch_save(state, path)


def _cause(error: Exception) -> str:
    """torch's reason, without its advice to retry with ``weights_only=False``: for a torn or
    random file that advice is wrong, and for a foreign one it would run arbitrary code."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        reason = next((line for line in lines[1:] if line.startswith(("Unsupported", "Unpickler"))),
                      "the pickle stream holds something other than tensors and plain data")
        return f"{type(error).__name__}: {reason}"
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def load_checkpoint(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from pickles).

    ``mmap=True`` maps the file instead of reading it, so only the tensors used are paged in
    (averaging reads the model weights of a full training state and never touches the optimiser's).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
        raise CheckpointNotFoundError(f"checkpoint {path} {what}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except MemoryError:
        raise
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(f"checkpoint {path} is unreadable (torn, corrupt or not a torch "
                              f"checkpoint): {_cause(error)}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state
