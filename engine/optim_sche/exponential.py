"""Exponential decay, optionally after a linear warmup, with a floor."""

from __future__ import annotations

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.checks import int_at_least, number


class ExponentialLr(OptimScheduler):
    """s = real step from 1, w = ``warmup_steps``, p = max(w, 1):

    - s < w: ``lr(s) = lr · s / w``
    - s ≥ p: ``lr(s) = max(min_lr, lr · gamma^((s - p) / decay_steps))``

    so the peak ``optim_conf.lr`` is used at step p and multiplied by ``gamma`` every
    ``decay_steps`` steps after it.
    Keys: ``gamma`` (required, in (0, 1]), ``decay_steps`` (default 1), ``warmup_steps`` (default 0),
    ``min_lr`` (default 0).
    """

    def sche_init(self, gamma: float | None = None, decay_steps: int = 1, warmup_steps: int = 0,
                  min_lr: float = 0.0) -> None:
        self.gamma = number(self.conf_key("gamma"), gamma, above=0.0, maximum=1.0)
        self.decay_steps = int_at_least(self.conf_key("decay_steps"), decay_steps, 1)
        self.warmup_steps = int_at_least(self.conf_key("warmup_steps"), warmup_steps, 0)
        self.min_lr = number(self.conf_key("min_lr"), min_lr, minimum=0.0, maximum=self.base_lr)

    def update_lr(self, real_step: int) -> float:
        if real_step < self.warmup_steps:
            return self.base_lr * real_step / self.warmup_steps
        peak_step = max(self.warmup_steps, 1)
        return max(self.min_lr, self.base_lr * self.gamma ** ((real_step - peak_step) / self.decay_steps))
