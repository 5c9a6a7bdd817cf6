"""Audio loading through soundfile (``torchaudio.load`` needs torchcodec, which we avoid).

Any format libsndfile reads (wav, flac; int16, int32, float32) becomes a mono float32
tensor in [-1, 1] at the wanted rate. Downmixing and resampling are logged once per
process and kind; the per-list counts are in the DataReport (see ``read_jsonl``).
"""

from __future__ import annotations

import logging

import soundfile
import torch
import torchaudio

logger = logging.getLogger(__name__)
_already_logged: set[tuple] = set()


class AudioError(RuntimeError):
    """An audio file that cannot be read; the message names the file."""


def _log_once(kind: tuple, message: str) -> None:
    if kind not in _already_logged:
        _already_logged.add(kind)
        logger.warning("%s (logged once; counts are in the data report)", message)


def load_audio(path, fs: int = 16000) -> torch.Tensor:
    """Read ``path`` as a mono float32 waveform of shape (num_samples,) at ``fs`` Hz."""
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(f"{path}: cannot read audio: {error}") from error
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples")
    wave = torch.from_numpy(data)
    if wave.shape[1] > 1:
        _log_once(("downmix", wave.shape[1]), f"downmixing {wave.shape[1]}-channel audio to mono, e.g. {path}")
        wave = wave.mean(dim=1)
    else:
        wave = wave[:, 0]
    if rate != fs:
        _log_once(("resample", rate, fs), f"resampling {rate} Hz audio to {fs} Hz, e.g. {path}")
        wave = torchaudio.functional.resample(wave, rate, fs)
    return wave.contiguous()
