"""SpecAugment on one utterance's features, built from ``specaug_conf``.

Frequency and time masks are torchaudio's (``FrequencyMasking``, ``TimeMasking``): the same
draws and bands, applied as slices (see :func:`mask_bands`). Time masks may be given as a fixed
width (``time_mask_width``, frames) or as a share of the utterance (``time_mask_width_ratio``,
as in FunASR's SpecAugLFR), which keeps short utterances from being blanked out. Time
warping is off unless ``time_warp_window`` > 0: torchaudio has no spectrogram time warp,
so it is written here (ESPnet's interpolation warp).
"""

from __future__ import annotations

import random

import torch


class SpecAugment:
    """(frames, dim) -> (frames, dim) with masked bands; use only in training."""

    def __init__(self, num_freq_mask: int = 2, freq_mask_width: int = 27, num_time_mask: int = 2,
                 time_mask_width: int | None = None, time_mask_width_ratio: float | None = 0.05,
                 time_warp_window: int = 0):
        if time_mask_width is None and time_mask_width_ratio is None:
            raise ValueError("specaug_conf: give time_mask_width or time_mask_width_ratio")
        self.num_freq_mask = num_freq_mask
        self.num_time_mask = num_time_mask
        self.time_mask_width = time_mask_width
        self.time_mask_width_ratio = time_mask_width_ratio
        self.time_warp_window = time_warp_window
        self.freq_mask_width = freq_mask_width

    def _time_mask_width(self, frames: int) -> int:
        if self.time_mask_width is not None:
            return self.time_mask_width
        return max(1, int(frames * self.time_mask_width_ratio))

    def time_warp(self, feats: torch.Tensor) -> torch.Tensor:
        """Stretch the part before a random centre and squeeze the part after it (or the reverse)."""
        frames = feats.shape[0]
        window = self.time_warp_window
        if frames <= 2 * window + 1:
            return feats
        centre = random.randrange(window, frames - window)
        warped = random.randrange(centre - window, centre + window) + 1
        grid = feats.t().unsqueeze(0)
        left = torch.nn.functional.interpolate(grid[..., :centre], size=warped, mode="linear", align_corners=False)
        right = torch.nn.functional.interpolate(grid[..., centre:], size=frames - warped, mode="linear",
                                                align_corners=False)
        return torch.cat([left, right], dim=-1).squeeze(0).t()

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        if self.time_warp_window > 0:
            feats = self.time_warp(feats)
        if self.num_freq_mask <= 0 and self.num_time_mask <= 0:
            return feats
        feats = feats.clone()
        mask_bands(feats, 1, self.num_freq_mask, self.freq_mask_width)
        mask_bands(feats, 0, self.num_time_mask, min(self._time_mask_width(feats.shape[0]), feats.shape[0]))
        return feats


def mask_bands(feats: torch.Tensor, axis: int, count: int, mask_param: int) -> None:
    """Zero ``count`` bands of ``feats`` along ``axis`` in place, as ``count`` calls of torchaudio's
    ``mask_along_axis(spec, mask_param, 0.0, axis)`` do on (freq, time): per band a width
    ``rand · mask_param`` and a start ``rand · (size - width)``, truncated, drawn from torch's
    generator in the same order and float32 arithmetic (tests/data/test_specaug.py compares them).

    Written out because each torchaudio call builds an arange, a boolean mask and a masked copy
    of the whole utterance: four masks took 0.75 ms an utterance, a quarter of the demo
    recipe's feature time; slices of the drawn bands take a few microseconds.
    """
    if count <= 0 or mask_param < 1:
        return
    draws = torch.rand(count, 2)
    widths = draws[:, 0] * mask_param
    starts = (draws[:, 1] * (feats.shape[axis] - widths)).long()
    for start, width in zip(starts.tolist(), widths.long().tolist()):
        feats.narrow(axis, start, width).zero_()
