"""Label-smoothed cross entropy for the attention decoder, as WeNet/ESPnet compute it."""

from __future__ import annotations

import torch
from torch import nn


class LabelSmoothingLoss(nn.Module):
    """KL divergence to a target that puts ``1-smoothing`` on the true token and spreads
    ``smoothing`` over the other ``size-1`` tokens. Normalised by the number of tokens when
    ``normalize_length`` else by the batch size.

    torch's ``cross_entropy(label_smoothing=)`` spreads the mass over all ``size`` tokens and
    reports a loss offset by the target entropy; this form keeps WeNet's numbers comparable.
    """

    def __init__(self, size: int, padding_idx: int, smoothing: float, normalize_length: bool = False):
        super().__init__()
        self.size = size
        self.padding_idx = padding_idx
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.normalize_length = normalize_length

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """x (B,L,V) logits, target (B,L) with padding_idx on padding."""
        batch_size = x.size(0)
        x = x.reshape(-1, self.size).float()
        target = target.reshape(-1)
        ignore = target == self.padding_idx
        true_dist = torch.full_like(x, self.smoothing / (self.size - 1))
        true_dist.scatter_(1, target.masked_fill(ignore, 0).unsqueeze(1), self.confidence)
        kl = torch.nn.functional.kl_div(torch.log_softmax(x, dim=1), true_dist, reduction="none")
        total = kl.masked_fill(ignore.unsqueeze(1), 0.0).sum()
        denom = (~ignore).sum() if self.normalize_length else batch_size
        return total / denom
