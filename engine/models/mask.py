"""Boolean masks, WeNet convention: True marks a position that takes part (a real frame or token)."""

from __future__ import annotations

import torch


def make_non_pad_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) mask, True on real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def subsequent_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """(size, size) lower-triangular mask: position i sees positions 0..i (decoder, causal encoder)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()
