"""asr-tui's ASR training engine: data, models, OptimSchedulers, trainer, checkpoints, decoding.

Importing ``engine`` stays light (no torch) so the console can use ``engine.config`` and
``engine.events``; heavy names are resolved on first use.
"""


def __getattr__(name):
    if name == "AutoModel":
        from engine.decode.auto_model import AutoModel

        return AutoModel
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
