"""Dropout whose mask is cheaper to draw on a CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, and ``rand_like`` is not much faster: both
turn one 32-bit draw of the (single-threaded) Mersenne Twister into each element, 5-6 ms for a
(32,47,576) tensor with 2 threads. A Conformer 4x144 training step draws 36 masks; on 2 cores
they were a tenth of the step. Here each element gets 16 random bits instead: the draws are
64-bit words viewed as four int16 lanes, a quarter of the draws (rand_like + compare + scale 6.4
ms, this 3.3 ms on that tensor; tests/models/test_models.py checks the law lane by lane). The
comparison writes its 0/1 straight into a tensor of x's dtype: ``ge`` to a bool tensor, then
conversions to float32 (and to bfloat16 under autocast) took 0.75-0.85 ms for a (20,50,512) mask,
this 0.24 ms; whole steps, 40 alternating pairs: 0.97x (FunASR recipe, bf16), 0.98x (demo).

The law is nn.Dropout's with p rounded to a multiple of 1/65536 (within 7.6e-6 of it): each
element is kept with probability 1 - p' and scaled by 1 / (1 - p'), so the expectation is exact
in float32. The keep probability does not depend on x's dtype (the draws are integers); in
bfloat16 the scale is rounded to bfloat16 (1.109375 for p = 0.1, 0.16% low).

Elsewhere (CUDA's fused kernel, under torch.compile, p that rounds to 0 or 1, in-place use, eval)
nn.Dropout runs.
"""

from __future__ import annotations

import torch
from torch import nn

LEVELS = 1 << 16  # one int16 lane per element


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(shape) of ``dtype``: 0 with probability round(p * 65536) / 65536, else 1 / (1 - that)."""
    drop = round(p * LEVELS)
    count = shape.numel()
    # random_(from, to) over the whole int64 range but two values: every bit of a word is uniform
    # (random_() alone leaves the sign bit 0, which would keep every fourth lane's top bit at 0).
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(1 << 63) + 1, (1 << 63) - 1)
    lanes = words.view(torch.int16)[:count].view(shape)
    mask = torch.empty(shape, dtype=dtype)
    torch.ge(lanes, drop - LEVELS // 2, out=mask)
    return mask.mul_(LEVELS / (LEVELS - drop))


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.compile traces nn.Dropout (inductor draws its masks with its own Philox generator;
        # Tensor.random_ would break the graph)
        if (not self.training or self.inplace or x.device.type != "cpu" or torch.compiler.is_compiling()
                or not 0 < round(self.p * LEVELS) < LEVELS):
            return super().forward(x)
        return x * keep_mask(x.shape, self.p, x.dtype)
