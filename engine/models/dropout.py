"""Dropout whose mask is cheaper to draw on a CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, which runs at about a third of the speed
of ``rand_like`` (measured: 11.7 ms against 4.4 ms for rand + compare + scale on a (32,47,576)
tensor, 2 threads). A Conformer 4x144 training step draws 36 masks; on 2 cores they were 11% of
the step. The function is the same: each element is kept with probability 1 - p and scaled by
1 / (1 - p). Elsewhere (CUDA's fused kernel, p of 0 or 1, in-place use, eval) nn.Dropout runs.
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.inplace or x.device.type != "cpu" or not 0.0 < self.p < 1.0:
            return super().forward(x)
        # drawn in float32 whatever x is: a bfloat16 draw under autocast would bend the law
        keep = torch.rand(x.shape, dtype=torch.float32).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep.to(x.dtype)
