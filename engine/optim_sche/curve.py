"""``lr_curve``: each OptimScheduler's lr at every update it will make, without a model."""

from __future__ import annotations

from engine.optim_sche.build import build_one
from engine.optim_sche.conf import OptimConfError


def lr_curve(optim_sches_conf: dict, total_steps: int, accum_grad: int = 1, *, ft_factor: float = 1.0) -> dict[str, list[float]]:
    """``{name: [lr of update 1, lr of update 2, ...]}`` over ``total_steps`` micro-batches.

    Each list has ``total_steps // accum_grad // step_per_update`` values (an entry's own
    ``accum_grad`` / ``ft_factor`` override the arguments, as in training). The values come from
    the same ``lr_at`` the training loop uses, so they are exactly what training will set.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
        raise ValueError(f"total_steps must be a non-negative integer, got {total_steps!r}")
    if not isinstance(optim_sches_conf, dict) or not optim_sches_conf:
        raise OptimConfError(f"optim_sches: must map names to OptimScheduler entries, got {optim_sches_conf!r}")
    defaults = {"accum_grad": accum_grad, "ft_factor": ft_factor}
    curves = {}
    for name, entry in optim_sches_conf.items():
        schedule = build_one(str(name), entry, None, defaults)
        real_steps = total_steps // schedule.accum_grad
        curves[str(name)] = [schedule.lr_at(s) for s in range(schedule.step_per_update, real_steps + 1, schedule.step_per_update)]
    return curves
