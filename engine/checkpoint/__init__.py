"""Checkpoints: atomic save/load, FunASR names, keep-n-best with an index, averaging.

``names`` and ``ranking`` are torch-free and the console imports them directly
(``engine.checkpoint.names``, ``engine.checkpoint.ranking``); the names below that need torch
are imported on first use, so importing this package alone does not load torch.
"""

from __future__ import annotations

import importlib

from engine.checkpoint.names import INDEX, LATEST, average_name, epoch_name, parse_name, step_name
from engine.checkpoint.ranking import METRICS, rank_entries

_LAZY = {
    "average_checkpoints": "engine.checkpoint.average", "model_state": "engine.checkpoint.average",
    "AverageResult": "engine.checkpoint.manager", "CheckpointManager": "engine.checkpoint.manager",
    "SaveResult": "engine.checkpoint.manager",
    "CheckpointError": "engine.checkpoint.storage", "CheckpointNotFoundError": "engine.checkpoint.storage",
    "load_checkpoint": "engine.checkpoint.storage", "save_checkpoint": "engine.checkpoint.storage",
}

__all__ = [
    "AverageResult", "CheckpointError", "CheckpointManager", "CheckpointNotFoundError", "INDEX",
    "LATEST", "METRICS", "SaveResult", "average_checkpoints", "average_name", "epoch_name", "load_checkpoint",
    "model_state", "parse_name", "rank_entries", "save_checkpoint", "step_name",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
