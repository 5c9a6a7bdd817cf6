"""Data pipeline: lists, audio, features, tokenizers, batching. See docs/data.md.

Names are imported on first use, so that light tools (``asr-data demo`` on a finished
corpus, the console) do not pay for importing torch.
"""

__all__ = ["build_dataloader", "DataReport"]


def __getattr__(name):
    if name == "build_dataloader":
        from engine.data.loader import build_dataloader

        return build_dataloader
    if name == "DataReport":
        from engine.data.report import DataReport

        return DataReport
    raise AttributeError(f"module 'engine.data' has no attribute {name!r}")
