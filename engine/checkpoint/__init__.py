"""Checkpoints: atomic save/load, FunASR names, keep-n-best with an index, averaging."""

from engine.checkpoint.average import average_checkpoints, model_state
from engine.checkpoint.manager import AverageResult, CheckpointManager, SaveResult, rank_entries
from engine.checkpoint.names import INDEX, LATEST, average_name, epoch_name, parse_name, step_name
from engine.checkpoint.storage import (CheckpointError, CheckpointNotFoundError, load_checkpoint,
                                       save_checkpoint)

__all__ = [
    "AverageResult", "CheckpointError", "CheckpointManager", "CheckpointNotFoundError", "INDEX",
    "LATEST", "SaveResult", "average_checkpoints", "average_name", "epoch_name", "load_checkpoint",
    "model_state", "parse_name", "rank_entries", "save_checkpoint", "step_name",
]
