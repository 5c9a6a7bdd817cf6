"""Position-wise feed-forward block of Transformer and Conformer layers."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.dropout import Dropout


class PositionwiseFeedForward(nn.Module):
    """Linear(idim -> hidden) -> activation -> dropout -> Linear(hidden -> idim)."""

    def __init__(self, idim: int, hidden_units: int, dropout_rate: float, activation: nn.Module):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.activation = activation
        self.dropout = Dropout(dropout_rate)
        self.w_2 = nn.Linear(hidden_units, idim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))
