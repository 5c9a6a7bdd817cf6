"""ESPnet / FunASR WarmupLR: the inverse-square-root schedule with its peak at ``warmup_steps``."""

from __future__ import annotations

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.checks import int_at_least


class WarmupLr(OptimScheduler):
    """``lr(s) = lr · w^0.5 · min(s^-0.5, s · w^-1.5)``, s = real step from 1, w = ``warmup_steps``.

    Rises linearly to ``optim_conf.lr`` at s = w, then decays as ``lr · (w / s)^0.5``.
    Keys: ``warmup_steps`` (default 25000, FunASR's).
    """

    def sche_init(self, warmup_steps: int = 25000) -> None:
        self.warmup_steps = int_at_least(self.conf_key("warmup_steps"), warmup_steps, 1)

    def update_lr(self, real_step: int) -> float:
        w = self.warmup_steps
        return self.base_lr * w**0.5 * min(real_step**-0.5, real_step * w**-1.5)
