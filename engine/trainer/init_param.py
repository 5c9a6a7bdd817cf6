"""``train_conf.init_param``: start from another model's weights, and say exactly what was taken.

FunASR loads what matches and logs little; a fine-tuning run that silently keeps a freshly
initialised decoder (renamed keys, a different vocabulary) is a classic lost week. Every key is
accounted for: loaded, missing (left as initialised), mismatched (shape differs: left as
initialised) or unexpected (in the file but not in the model: ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.checkpoint import load_checkpoint
from engine.optim_sche import init_real_step


def model_weights(checkpoint: dict, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint (full state, averaged model or a bare state dict)."""
    weights = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"{path}: no model weights found (expected a state dict or a 'model' entry)")
    return {key.removeprefix("module."): value for key, value in weights.items()}


def load_init_param(model: torch.nn.Module, paths: str | list[str]) -> tuple[dict, int | None]:
    """Copy matching weights from ``paths`` (later files win) into ``model``.

    Returns the report and the optimizer step the (last) checkpoint had reached, if it holds
    optimizer state: ``warmup_from: init`` schedules continue from there.
    """
    paths = [p.strip() for p in paths.split(",")] if isinstance(paths, str) else list(paths)
    target = model.state_dict()
    source: dict[str, torch.Tensor] = {}
    init_step = None
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"train_conf.init_param: {path}: no such checkpoint file")
        checkpoint = load_checkpoint(path)
        source.update(model_weights(checkpoint, path))
        init_step = init_real_step(checkpoint.get("train_step")) if isinstance(checkpoint, dict) else None
    loaded, mismatched, unexpected = [], [], []
    usable = {}
    for key, value in source.items():
        if key not in target:
            unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            mismatched.append({"key": key, "checkpoint": list(value.shape), "model": list(target[key].shape)})
        else:
            usable[key] = value
            loaded.append(key)
    missing = [key for key in target if key not in source]
    model.load_state_dict(usable, strict=False)
    report = {"paths": [str(p) for p in paths], "loaded": len(loaded), "total": len(target),
              "missing": missing, "mismatched": mismatched, "unexpected": unexpected}
    return report, init_step


def describe(report: dict) -> str:
    """One log line per problem class, so a partial load is impossible to miss."""
    lines = [f"init_param {', '.join(report['paths'])}: loaded {report['loaded']}/{report['total']} tensors"]
    if report["missing"]:
        lines.append(f"  missing (kept initialised) {len(report['missing'])}: {', '.join(report['missing'][:20])}"
                     + (" ..." if len(report["missing"]) > 20 else ""))
    for item in report["mismatched"][:20]:
        lines.append(f"  shape mismatch (kept initialised) {item['key']}: checkpoint {item['checkpoint']} "
                     f"vs model {item['model']}")
    if report["unexpected"]:
        lines.append(f"  unexpected (ignored) {len(report['unexpected'])}: {', '.join(report['unexpected'][:20])}"
                     + (" ..." if len(report["unexpected"]) > 20 else ""))
    return "\n".join(lines)
