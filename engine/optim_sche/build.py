"""``build_optim_sches``: every OptimScheduler of a config, over disjoint parameter sets."""

from __future__ import annotations

import inspect
import logging

import torch

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.conf import OptimConfError, entry_kwargs
from engine.optim_sche.registry import resolve_scheduler
from engine.optim_sche.run_length import resolve_max_update

# Batches per epoch assumed by the config check for max_update: auto (the trainer computes the real one).
STAND_IN_BATCHES_PER_EPOCH = 1_000_000

logger = logging.getLogger(__name__)


def build_one(name: str, entry: dict, model: torch.nn.Module | None, train_conf: dict | None) -> OptimScheduler:
    """One entry of ``optim_sches``; ``model=None`` gives the schedule alone."""
    sche_type, kwargs = entry_kwargs(name, entry, train_conf)
    cls = resolve_scheduler(sche_type, key=f"optim_sches.{name}.type")
    return cls(model=model, name=name, **kwargs)


def check_optim_sches(optim_sches_conf: dict, train_conf: dict | None) -> list[tuple[str, str]]:
    """(dotted key, problem) for every entry whose schedule or optimiser arguments are wrong.

    Run before anything is written and without a model: each schedule is built alone
    (``model=None``, the very code training runs), and each optimiser is made once over a
    one-element stand-in parameter, so torch.optim's own range checks (lr, betas, eps, ...) apply.
    """
    problems = []
    # max_update: auto becomes the run's length only once the sampler is built: a stand-in checks the rest.
    optim_sches_conf, _, _ = resolve_max_update(optim_sches_conf, train_conf or {}, STAND_IN_BATCHES_PER_EPOCH)
    for name, entry in optim_sches_conf.items():
        key = f"optim_sches.{name}.conf"
        try:
            schedule = build_one(str(name), entry, None, train_conf)
        except OptimConfError as exc:
            dotted, _, message = str(exc).partition(": ")
            problems.append((dotted, message))
            continue
        except (TypeError, ValueError) as exc:
            problems.append((key, f"{type(exc).__name__}: {exc}"))
            continue
        accepted = [p for p in inspect.signature(schedule.optim_class).parameters if p not in ("self", "params")]
        unknown = sorted(set(schedule.optim_conf) - set(accepted))
        if unknown:
            problems.append((f"{key}.optim_conf.{unknown[0]}",
                             f"unknown key for torch.optim.{schedule.optim_class.__name__} "
                             f"(accepted: {', '.join(accepted)})"))
            continue
        try:
            schedule.optim_class([torch.zeros(1, requires_grad=True)], **schedule.optim_conf)
        except (TypeError, ValueError, RuntimeError) as exc:
            problems.append((f"{key}.optim_conf", f"torch.optim.{schedule.optim_class.__name__}: {exc}"))
    return problems


def _check_disjoint(optim_sches: dict[str, OptimScheduler]) -> None:
    owner: dict[int, str] = {}
    for name, optim_sche in optim_sches.items():
        for param in optim_sche.params:
            other = owner.get(id(param))
            if other is not None:
                shared = [n for n, p in zip(optim_sche.param_names, optim_sche.params) if owner.get(id(p)) == other]
                raise OptimConfError(
                    f"optim_sches.{other} and optim_sches.{name} both update {len(shared)} parameter tensor(s) "
                    f"(e.g. {', '.join(shared[:3])}); give them disjoint updated_modules"
                )
        owner.update((id(p), name) for p in optim_sche.params)


def build_optim_sches(optim_sches_conf: dict, model: torch.nn.Module, train_conf: dict | None = None) -> dict[str, OptimScheduler]:
    """``{name: OptimScheduler}`` in config order; train_conf gives accum_grad, grad_clip... defaults."""
    if not isinstance(optim_sches_conf, dict) or not optim_sches_conf:
        raise OptimConfError(f"optim_sches: must map names to OptimScheduler entries, got {optim_sches_conf!r}")
    optim_sches = {str(name): build_one(str(name), entry, model, train_conf) for name, entry in optim_sches_conf.items()}
    _check_disjoint(optim_sches)
    bare = getattr(model, "module", model) if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    owned = {id(p) for o in optim_sches.values() for p in o.params}
    idle = [n for n, p in bare.named_parameters() if p.requires_grad and id(p) not in owned]
    if idle:
        top = sorted({n.split(".", 1)[0] for n in idle})
        logger.info("%d trainable parameter tensors are updated by no OptimScheduler (modules: %s)", len(idle), ", ".join(top))
    for optim_sche in optim_sches.values():
        logger.info("%r", optim_sche)
    return optim_sches
