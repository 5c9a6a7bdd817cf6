"""Positional encodings. Each returns ``(x, pos_emb)``; the attention layer knows how to use pos_emb.

Tables are computed for the length at hand, so there is no maximum length to outgrow and nothing
positional is stored in checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.models.dropout import Dropout


def sinusoid_table(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) float positions -> (N, dim) table of interleaved sin/cos (Vaswani et al.)."""
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) * (-math.log(10000.0) / dim)
    )
    angles = positions.float().unsqueeze(1) * inv_freq.unsqueeze(0)
    table = torch.zeros(positions.numel(), dim, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


class PositionalEncoding(nn.Module):
    """Absolute sinusoidal positions added to the scaled input (``abs_pos``)."""

    def __init__(self, d_model: int, dropout_rate: float):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = Dropout(dropout_rate)

    def position_table(self, length: int, offset: int, like: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(offset, offset + length, device=like.device)
        return sinusoid_table(positions, self.d_model).to(like.dtype).unsqueeze(0)

    def forward(self, x: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        pos_emb = self.position_table(x.size(1), offset, x)
        return self.dropout(x * self.xscale + pos_emb), self.dropout(pos_emb)


class RelPositionalEncoding(PositionalEncoding):
    """Relative positions (Transformer-XL, ESPnet ``rel_pos``): a table for distances T-1 .. -(T-1).

    Row k of pos_emb is the distance ``T-1-k``; the attention layer shifts it so that query i
    and key j read the row of distance ``i-j``. Only distances are encoded, so a frame's output does
    not depend on how much padding its batch carries.
    """

    def forward(self, x: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        length = x.size(1)
        distances = torch.arange(length - 1, -length, -1, device=x.device)
        pos_emb = sinusoid_table(distances, self.d_model).to(x.dtype).unsqueeze(0)
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


class RotaryPositionalEncoding(nn.Module):
    """Rotary positions (RoFormer): returns (cos, sin) tables that attention applies to q and k per head."""

    def __init__(self, d_model: int, dropout_rate: float, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head size, got {head_dim}")
        self.xscale = math.sqrt(d_model)
        self.head_dim = head_dim
        self.base = base
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(offset, offset + x.size(1), device=x.device, dtype=torch.float32)
        inv_freq = self.base ** (
            -torch.arange(0, self.head_dim, 2, device=x.device, dtype=torch.float32) / self.head_dim
        )
        angles = torch.outer(positions, inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        pos_emb = torch.stack([angles.cos(), angles.sin()]).to(x.dtype)  # (2, T, head_dim)
        return self.dropout(x * self.xscale), pos_emb


class NoPositionalEncoding(nn.Module):
    """``no_pos``: the convolutions alone carry order."""

    def __init__(self, d_model: int, dropout_rate: float):
        super().__init__()
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, None]:
        return self.dropout(x), None
