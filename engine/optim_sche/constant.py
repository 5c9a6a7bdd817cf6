"""Constant learning rate, optionally after a linear warmup."""

from __future__ import annotations

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.checks import int_at_least


class ConstantLr(OptimScheduler):
    """``lr(s) = lr · min(1, s / w)`` for ``warmup_steps`` w > 0, else ``lr``; s = real step from 1.

    Keys: ``warmup_steps`` (default 0).
    """

    def sche_init(self, warmup_steps: int = 0) -> None:
        self.warmup_steps = int_at_least(self.conf_key("warmup_steps"), warmup_steps, 0)

    def update_lr(self, real_step: int) -> float:
        if self.warmup_steps and real_step < self.warmup_steps:
            return self.base_lr * real_step / self.warmup_steps
        return self.base_lr
