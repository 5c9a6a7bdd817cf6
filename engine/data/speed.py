"""Speed perturbation (``dataset_conf.speed_perturb``), as WeNet and FunASR recipes use it.

Each epoch every training utterance is played at one of the factors (e.g. 0.9, 1.0, 1.1: tempo
and pitch together, like sox ``speed``), drawn from the sampler's seed and the epoch, so a
resumed run draws the same ones (engine.data.batching); its length, and so its batch, changes
with it. This module imports neither numpy nor torch at load: engine.config checks the key.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

SPEED_RANGE = (0.5, 2.0)


def check_speed_factors(factors) -> tuple[float, ...]:
    """``dataset_conf.speed_perturb``: null, or a non-empty list of factors in 0.5..2.0."""
    if factors is None:
        return ()
    low, high = SPEED_RANGE
    if (not isinstance(factors, (list, tuple)) or not factors
            or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and low <= f <= high for f in factors)):
        raise ValueError(f"dataset_conf.speed_perturb: must be null or a list of speed factors in {low}..{high} "
                         f"(e.g. [0.9, 1.0, 1.1]), got {factors!r}")
    return tuple(float(f) for f in factors)


def perturb(wave, factor: float):
    """``wave`` played ``factor`` times as fast: resampled by 1/factor, so it has ``len / factor`` samples.

    The ratio is taken as a small fraction (1.1 -> 11/10), which keeps the polyphase resampler's
    kernel short; the kernel is made once per factor and process (torchaudio's Resample).
    """
    if factor == 1.0:
        return wave
    import torch

    with torch.no_grad():
        return _resampler(float(factor))(wave)


@lru_cache(maxsize=16)
def _resampler(factor: float):
    import torchaudio

    ratio = Fraction(factor).limit_denominator(100)
    return torchaudio.transforms.Resample(ratio.numerator, ratio.denominator)
