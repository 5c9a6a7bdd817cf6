"""Data pipeline: lists, audio, features, tokenizers, batching. See docs/data.md."""

from engine.data.loader import build_dataloader
from engine.data.report import DataReport

__all__ = ["build_dataloader", "DataReport"]
