"""FunASR's single-optimiser form read as one OptimScheduler, and the keys every entry shares.

No torch import here: ``engine.config`` (imported by the console) calls
:func:`normalise_optim_conf` while validating a config.
"""

from __future__ import annotations

import copy
from typing import Any

FUNASR_OPTIM_KEYS = ("optim", "optim_conf", "scheduler", "scheduler_conf")

# train_conf keys an optim_sches entry's conf may override for its own optimiser.
TRAIN_CONF_KEYS = ("accum_grad", "grad_clip", "grad_norm_type", "ft_factor", "warmup_from")

# train_conf keys that concern the one forward pass all optimisers share, so no entry may override them.
GLOBAL_ONLY_KEYS = ("use_fp16", "use_bf16", "find_unused_parameters", "compile")

WARMUP_FROM_CHOICES = ("zero", "init")

# train_conf.compile (what each does: engine/optim_sche/compile.py, which needs torch; this module does not).
COMPILE_CHOICES = ("auto", True, False)

# Keys every OptimScheduler takes, whatever its schedule.
GENERAL_KEYS = (
    "optim_type",
    "optim_conf",
    "optim_loss",
    "updated_modules",
    "step_per_update",
    "module_lr_scales",
) + TRAIN_CONF_KEYS

# FunASR (funasr/optimizers/__init__.py) names optimisers in lower case; torch.optim capitalises them.
FUNASR_OPTIMS = {
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
    "adadelta": "Adadelta",
    "adagrad": "Adagrad",
    "adamax": "Adamax",
    "asgd": "ASGD",
    "nadam": "NAdam",
    "radam": "RAdam",
    "rmsprop": "RMSprop",
    "rprop": "Rprop",
}

# FunASR scheduler name -> (our registry name, {FunASR scheduler_conf key: our key}).
FUNASR_SCHEDULERS = {
    "warmuplr": ("warmuplr", {}),
    "noamlr": ("noam", {"model_size": "d_model"}),
    "tri_stage": ("tri_stage", {}),
    "exponentiallr": ("exponential", {}),
    "cosineannealinglr": ("cosine", {"T_max": "max_update", "eta_min": "min_lr"}),
    "constantlr": ("constant", {}),
    "none": ("constant", {}),
}


class OptimConfError(ValueError):
    """An OptimScheduler config problem; the message starts with the dotted key."""


def _funasr_entry(single: dict[str, Any], base: dict | None) -> dict:
    """One ``optim_sches`` entry from FunASR's keys, laid over ``base`` (an existing single entry)."""
    entry = copy.deepcopy(base) if base else {"type": "warmuplr", "conf": {}}
    conf = entry.setdefault("conf", {})
    if "optim" in single:
        name = str(single["optim"])
        conf["optim_type"] = FUNASR_OPTIMS.get(name.lower(), name)
    if single.get("optim_conf") is not None:
        if not isinstance(single["optim_conf"], dict):
            raise OptimConfError(f"optim_conf: must be a mapping, got {single['optim_conf']!r}")
        merged = dict(conf.get("optim_conf") or {})
        merged.update(single["optim_conf"])
        conf["optim_conf"] = merged
    renames: dict[str, str] = {}
    if "scheduler" in single:
        scheduler = "none" if single["scheduler"] is None else str(single["scheduler"])
        known = FUNASR_SCHEDULERS.get(scheduler.lower())
        if known is None:
            raise OptimConfError(
                f"scheduler: {scheduler!r} is not supported (FunASR names: {', '.join(FUNASR_SCHEDULERS)}; "
                f"or write optim_sches with type noam, warmuplr, tri_stage, cosine, constant, exponential)"
            )
        if entry.get("type") != known[0]:
            # A different schedule: the old one's fields would be unknown keys to the new one.
            entry["conf"] = conf = {k: v for k, v in conf.items() if k in GENERAL_KEYS}
        entry["type"], renames = known
    if single.get("scheduler_conf") is not None:
        if not isinstance(single["scheduler_conf"], dict):
            raise OptimConfError(f"scheduler_conf: must be a mapping, got {single['scheduler_conf']!r}")
        for key, value in single["scheduler_conf"].items():
            conf[renames.get(key, key)] = value
    return entry


def normalise_optim_conf(config: dict) -> dict:
    """A copy of ``config`` with FunASR's ``optim``/``optim_conf``/``scheduler``/``scheduler_conf`` folded in.

    With no ``optim_sches`` they become one entry named ``main``; with exactly one entry they are laid
    over it (so ``++optim_conf.lr=0.0002`` works on a single-optimiser preset, as in FunASR's docs);
    with several entries they are ambiguous and an error. FunASR's scheduler names and keys are
    mapped to ours (``noamlr`` + ``model_size`` -> ``noam`` + ``d_model``, ...).
    """
    if not isinstance(config, dict):
        raise OptimConfError(f"the config must be a mapping, got {type(config).__name__}")
    result = copy.deepcopy(config)
    single = {key: result.pop(key) for key in FUNASR_OPTIM_KEYS if key in result}
    if not single:
        return result
    sches = result.get("optim_sches")
    if sches is not None and not isinstance(sches, dict):
        raise OptimConfError(f"optim_sches: must be a mapping of named OptimSchedulers, got {sches!r}")
    if sches and len(sches) > 1:
        raise OptimConfError(
            f"{', '.join(single)}: FunASR's single-optimiser keys are ambiguous with {len(sches)} "
            f"optim_sches ({', '.join(map(str, sches))}); set optim_sches.<name>.conf instead"
        )
    name, base = next(iter(sches.items())) if sches else ("main", None)
    if base is not None and not isinstance(base, dict):
        raise OptimConfError(f"optim_sches.{name}: must be a mapping with 'type' and 'conf'")
    result["optim_sches"] = {name: _funasr_entry(single, base)}
    return result


def entry_kwargs(name: str, entry: Any, train_conf: dict | None) -> tuple[str, dict]:
    """``(type, constructor kwargs)`` of one ``optim_sches`` entry, train_conf defaults filled in."""
    key = f"optim_sches.{name}"
    if not isinstance(entry, dict):
        raise OptimConfError(f"{key}: must be a mapping with 'type' and 'conf', got {entry!r}")
    unknown = sorted(set(entry) - {"type", "conf"})
    if unknown:
        raise OptimConfError(f"{key}.{unknown[0]}: unknown key (an entry has 'type' and 'conf')")
    sche_type = entry.get("type")
    if not isinstance(sche_type, str) or not sche_type:
        raise OptimConfError(f"{key}.type: must name a scheduler (noam, warmuplr, tri_stage, ...), got {sche_type!r}")
    conf = entry.get("conf") or {}
    if not isinstance(conf, dict):
        raise OptimConfError(f"{key}.conf: must be a mapping, got {conf!r}")
    for global_key in GLOBAL_ONLY_KEYS:
        if global_key in conf:
            raise OptimConfError(
                f"{key}.conf.{global_key}: applies to the forward pass every optimiser shares; "
                f"set train_conf.{global_key} instead"
            )
    kwargs = {k: (train_conf or {})[k] for k in TRAIN_CONF_KEYS if k in (train_conf or {})}
    kwargs.update(copy.deepcopy(conf))
    if kwargs.get("grad_clip") is None:
        kwargs.pop("grad_clip", None)
    return sche_type, kwargs
