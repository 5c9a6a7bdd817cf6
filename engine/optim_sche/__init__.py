"""OptimSchedulers: optimisers with their learning-rate schedules, and the TrainStep that drives them.

``engine.optim_sche.conf`` imports without torch (``engine.config`` uses it); the rest is loaded
on first use of a name, so importing the package costs no more than importing torch.
"""

_EXPORTS = {
    "OptimScheduler": "engine.optim_sche.abs",
    "build_optim_sches": "engine.optim_sche.build",
    "lr_curve": "engine.optim_sche.curve",
    "TrainStep": "engine.optim_sche.train_step",
    "StepResult": "engine.optim_sche.train_step",
    "init_real_step": "engine.optim_sche.train_step",
    "SCHEDULERS": "engine.optim_sche.registry",
    "resolve_scheduler": "engine.optim_sche.registry",
    "normalise_optim_conf": "engine.optim_sche.conf",
    "OptimConfError": "engine.optim_sche.conf",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine.optim_sche' has no attribute {name!r}")
