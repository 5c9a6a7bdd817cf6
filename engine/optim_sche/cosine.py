"""Linear warmup, then half a cosine from the peak down to ``min_lr`` at ``max_update``."""

from __future__ import annotations

import math

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.checks import int_at_least, number, unresolved_auto
from engine.optim_sche.run_length import AUTO


class CosineLr(OptimScheduler):
    """s = real step from 1, w = ``warmup_steps``, T = ``max_update``, m = ``min_lr``:

    - s ≤ w: ``lr(s) = lr · s / w``
    - w < s ≤ T: ``lr(s) = m + (lr - m) · (1 + cos(π · (s - w) / (T - w))) / 2``
    - s > T: ``lr(s) = m``

    Keys: ``max_update`` (real optimiser steps of the whole run; default ``auto``: the trainer
    computes it, see engine.optim_sche.run_length), ``warmup_steps`` (default 0), ``min_lr`` (default 0).
    """

    def sche_init(self, max_update: int | str = AUTO, warmup_steps: int = 0, min_lr: float = 0.0) -> None:
        max_update = unresolved_auto(self.conf_key("max_update"), max_update)
        self.warmup_steps = int_at_least(self.conf_key("warmup_steps"), warmup_steps, 0)
        self.max_update = int_at_least(self.conf_key("max_update"), max_update, self.warmup_steps + 1)
        self.min_lr = number(self.conf_key("min_lr"), min_lr, minimum=0.0, maximum=self.base_lr)

    def update_lr(self, real_step: int) -> float:
        if real_step <= self.warmup_steps:
            return self.base_lr * real_step / self.warmup_steps
        if real_step > self.max_update:
            return self.min_lr
        progress = (real_step - self.warmup_steps) / (self.max_update - self.warmup_steps)
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0
