"""Noam (Vaswani et al.): WarmupLR's shape, optionally with the peak set by the model width."""

from __future__ import annotations

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.checks import int_at_least


class NoamLr(OptimScheduler):
    """``lr(s) = c · min(s^-0.5, s · w^-1.5)``, s = real step from 1, w = ``warmup_steps``.

    Without ``d_model``: ``c = lr · w^0.5``, so the peak at s = w is exactly ``optim_conf.lr``
    (SpeeChain's form). With ``d_model``: ``c = lr · d_model^-0.5``, the paper's form where
    ``optim_conf.lr`` is a factor and the peak is ``lr · (d_model · w)^-0.5`` (ESPnet's NoamLR,
    FunASR's ``noamlr`` with ``model_size``).
    Keys: ``warmup_steps`` (default 25000), ``d_model`` (default null).
    """

    def sche_init(self, warmup_steps: int = 25000, d_model: int | None = None) -> None:
        self.warmup_steps = int_at_least(self.conf_key("warmup_steps"), warmup_steps, 1)
        self.d_model = None if d_model is None else int_at_least(self.conf_key("d_model"), d_model, 1)
        self.factor = self.base_lr * (self.warmup_steps**0.5 if self.d_model is None else self.d_model**-0.5)

    def update_lr(self, real_step: int) -> float:
        return self.factor * min(real_step**-0.5, real_step * self.warmup_steps**-1.5)
