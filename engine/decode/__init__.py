"""Decoding: CTC and attention searches, CER/WER scoring, model directories, AutoModel, asr-decode."""


def __getattr__(name):
    if name == "AutoModel":
        from engine.decode.auto_model import AutoModel

        return AutoModel
    raise AttributeError(f"module 'engine.decode' has no attribute {name!r}")
