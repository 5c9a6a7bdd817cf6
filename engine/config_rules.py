"""Rules between config fields: combinations that are each valid alone but cannot run together.

``engine.config.check_config`` applies them, so ``asr-train`` refuses these configs before it
writes anything, and the console's setup form shows the same problems beside the fields they
name. No torch import (the console calls this on every keystroke).

Every rule only judges values whose types are already right: a wrong type is reported once,
by the per-key checks in ``engine.config``.
"""

from __future__ import annotations

from engine.config import ConfigIssue


def cross_field_issues(config: dict) -> list[ConfigIssue]:
    """Problems between fields of a merged config, each named by the dotted key that fixes it."""
    # (bpe without vocab_size: engine.schema; max_source_length below min: check_config itself)
    issues: list[ConfigIssue] = []
    issues.extend(optim_overlap_issues(config.get("optim_sches")))
    dist = _section(config, "distributed")
    devices, procs = dist.get("devices"), dist.get("nproc_per_node")
    gpus = _device_list(devices)
    if gpus and _is_int(procs) and len(gpus) < procs:
        issues.append(ConfigIssue("distributed.devices", f"lists {len(gpus)} GPU(s) for nproc_per_node {procs}"))
    return issues


def optim_overlap_issues(optim_sches) -> list[ConfigIssue]:
    """Several OptimSchedulers must update disjoint modules (building them refuses overlaps)."""
    if not isinstance(optim_sches, dict) or len(optim_sches) < 2:
        return []
    issues: list[ConfigIssue] = []
    owner: dict[str, str] = {}
    for name, entry in optim_sches.items():
        key = f"optim_sches.{name}.conf.updated_modules"
        conf = (entry or {}).get("conf") if isinstance(entry, dict) else None
        modules = conf.get("updated_modules") if isinstance(conf, dict) else None
        if modules is None:
            issues.append(ConfigIssue(key, "with several OptimSchedulers, name the modules each one updates"))
            continue
        for module in [modules] if isinstance(modules, str) else list(modules) if isinstance(modules, list) else []:
            if module in owner:
                issues.append(ConfigIssue(key, f"{module} is already updated by {owner[module]}"))
            owner.setdefault(module, name)
    return issues


def _section(config: dict, key: str) -> dict:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _device_list(devices) -> list[str]:
    """The GPUs a ``distributed.devices`` value names ("0,1", [0, 1] or 3); [] for all visible."""
    if devices is None or isinstance(devices, bool):
        return []
    if isinstance(devices, list):
        return [str(d) for d in devices]
    return [d for d in str(devices).split(",") if d.strip()]
