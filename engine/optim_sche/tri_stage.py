"""Tri-stage (fairseq / FunASR TriStageLR): linear warmup, hold, exponential decay, final constant.

FunASR's TriStageLR needs ``init_tri_stage_scheudler(max_update)`` which its trainer never calls,
and it counts micro-batches, so ``accum_grad`` shortens it. Here every phase comes from the config
and is counted in real optimiser steps.
"""

from __future__ import annotations

import math

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.checks import int_at_least, number, unresolved_auto
from engine.optim_sche.run_length import AUTO
from engine.optim_sche.conf import OptimConfError


class TriStageLr(OptimScheduler):
    """n = real steps completed before this one (s - 1), peak = ``optim_conf.lr``,
    init = ``init_lr_scale`` · peak, final = ``final_lr_scale`` · peak, W/H/D = warmup/hold/decay steps:

    - n < W: ``lr = init + (peak - init) · n / W``
    - W ≤ n < W + H: ``lr = peak``
    - W + H ≤ n < W + H + D: ``lr = peak · exp(-k · (n - W - H))``, ``k = -ln(final_lr_scale) / D``
    - after: ``lr = final``

    Phases either explicit (``warmup_steps``, ``hold_steps``, ``decay_steps``) or from
    ``phase_ratio: [w, h, d]`` (summing to 1) times ``max_update`` (default ``auto``: the run's
    length, computed by the trainer, see engine.optim_sche.run_length).
    Keys: ``phase_ratio``, ``max_update``, ``warmup_steps``, ``hold_steps``, ``decay_steps``,
    ``init_lr_scale`` (default 0.01), ``final_lr_scale`` (default 0.01).
    """

    def sche_init(self, phase_ratio: list[float] | None = None, max_update: int | None = None,
                  warmup_steps: int | None = None, hold_steps: int | None = None, decay_steps: int | None = None,
                  init_lr_scale: float = 0.01, final_lr_scale: float = 0.01) -> None:
        explicit = {"warmup_steps": warmup_steps, "hold_steps": hold_steps, "decay_steps": decay_steps}
        given = [k for k, v in explicit.items() if v is not None]
        if phase_ratio is not None:
            if given:
                raise OptimConfError(f"{self.conf_key(given[0])}: give either phase_ratio (+ max_update) or the three step counts, not both")
            if (not isinstance(phase_ratio, (list, tuple)) or len(phase_ratio) != 3
                    or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 0 for r in phase_ratio)):
                raise OptimConfError(f"{self.conf_key('phase_ratio')}: must be three non-negative numbers [warmup, hold, decay], got {phase_ratio!r}")
            if abs(sum(phase_ratio) - 1.0) > 1e-6:
                raise OptimConfError(f"{self.conf_key('phase_ratio')}: must sum to 1, got {phase_ratio!r} (sum {sum(phase_ratio)})")
            max_update = unresolved_auto(self.conf_key("max_update"), AUTO if max_update is None else max_update)
            max_update = int_at_least(self.conf_key("max_update"), max_update, 1)
            self.warmup_steps, self.hold_steps, self.decay_steps = (int(r * max_update) for r in phase_ratio)
        else:
            if len(given) != 3:
                missing = [k for k in explicit if explicit[k] is None]
                raise OptimConfError(f"{self.conf_key(missing[0])}: tri_stage needs phase_ratio + max_update, or warmup_steps, hold_steps and decay_steps")
            if max_update is not None:
                raise OptimConfError(f"{self.conf_key('max_update')}: only used with phase_ratio")
            self.warmup_steps = int_at_least(self.conf_key("warmup_steps"), warmup_steps, 0)
            self.hold_steps = int_at_least(self.conf_key("hold_steps"), hold_steps, 0)
            self.decay_steps = int_at_least(self.conf_key("decay_steps"), decay_steps, 0)
        self.init_lr_scale = number(self.conf_key("init_lr_scale"), init_lr_scale, minimum=0.0, maximum=1.0)
        self.final_lr_scale = number(self.conf_key("final_lr_scale"), final_lr_scale, above=0.0, maximum=1.0)
        self.init_lr = self.init_lr_scale * self.base_lr
        self.final_lr = self.final_lr_scale * self.base_lr
        self.decay_factor = -math.log(self.final_lr_scale) / self.decay_steps if self.decay_steps else 0.0

    def update_lr(self, real_step: int) -> float:
        n = real_step - 1
        if n < self.warmup_steps:
            return self.init_lr + (self.base_lr - self.init_lr) * n / self.warmup_steps
        n -= self.warmup_steps
        if n < self.hold_steps:
            return self.base_lr
        n -= self.hold_steps
        if n < self.decay_steps:
            return self.base_lr * math.exp(-self.decay_factor * n)
        return self.final_lr
